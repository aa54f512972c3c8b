#!/bin/sh
# --iql-steps 6000: the default when this ran (9,000 beyond five goals since 2026-12-03, ../rl_iql_steps_many/)
# Report, not tuning (README.md here): on the fresh seeds 36-41, already reported at width 128, VPL +
# SPO and the oracle alone, 10 goals, at IQL width 128 and 256 on each seed's reward models and
# dataset from its plain-command run, so that the two runs of a seed differ only in IQL's width;
# then the paired differences. ~4 min (128) and ~7 min (256) a seed on the 2 cores. Seeds as
# arguments (default all six); the differences are printed once all six seeds' runs exist.
set -e
for s in ${@:-36 37 38 39 40 41}; do
  D=runs/rl-fresh/default-command-s$s; [ $s -le 38 ] && D=runs/rl-relabel8/default-command-s$s
  for h in 128 256; do
    P=runs/rl-iql-width/paired-s$s-h$h
    [ -f $P/maze-10goals.json ] && continue
    mkdir -p $P && cp -r $D/k10-seed$s-pcell-refine8 $P/
    pluralign rl bench --oracle-z position --seed $s --goals 10 --policy vpl+spo --policy oracle --iql-steps 6000 --iql-hidden $h --out $P --dataset $D/dataset
  done
done
for s in 36 37 38 39 40 41; do for h in 128 256; do
  grep -q '"config"' runs/rl-iql-width/paired-s$s-h$h/maze-10goals.json 2>/dev/null || exit 0   # written when a run ends
done; done
for p in vpl+spo oracle; do
  python benchmarks/rl_paired.py --goals 10 --policy $p --n 8 \
    --a runs/rl-iql-width/paired-s36-h128 --a runs/rl-iql-width/paired-s37-h128 --a runs/rl-iql-width/paired-s38-h128 \
    --a runs/rl-iql-width/paired-s39-h128 --a runs/rl-iql-width/paired-s40-h128 --a runs/rl-iql-width/paired-s41-h128 \
    --b runs/rl-iql-width/paired-s36-h256 --b runs/rl-iql-width/paired-s37-h256 --b runs/rl-iql-width/paired-s38-h256 \
    --b runs/rl-iql-width/paired-s39-h256 --b runs/rl-iql-width/paired-s40-h256 --b runs/rl-iql-width/paired-s41-h256
done
