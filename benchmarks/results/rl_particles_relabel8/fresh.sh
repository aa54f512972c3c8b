#!/bin/sh
# --iql-steps 6000: the default when this ran (9,000 beyond five goals since 2026-12-03, ../rl_iql_steps_many/)
# Report, not tuning (README.md here): the plain command at the new default (--relabel-context 8) on
# fresh seeds 36-38, aggregated; then VPL + SPO alone, 10 goals, with relabelling z of 2-8 and of 8
# pairs on each seed's reward models and dataset from that run (so the two runs of a seed differ only
# in the relabelling z and what IQL learns from it), ~2 min a run, and the paired difference.
# --iql-hidden 128: the default when this ran (256 since 2026-12-03, ../rl_iql_width/)
set -e
R=runs/rl-relabel8
for s in 36 37 38; do
  [ -f $R/default-command-s$s/maze-10goals.json ] || { mkdir -p $R/default-command-s$s
    /usr/bin/time -p -o $R/default-command-s$s/time.txt pluralign rl bench --oracle-z position --iql-steps 6000 --iql-hidden 128 --seed $s --out $R/default-command-s$s \
      2>&1 | grep -av "Gym\|gym\|Adroit" > $R/default-command-s$s/log.txt; }
done
pluralign rl aggregate $R/default-command-s36 $R/default-command-s37 $R/default-command-s38 \
    --out $R/default-command-seeds-36-38
for s in 36 37 38; do
  for c in 2-8 8; do
    P=$R/paired-s$s-c$c
    mkdir -p $P && cp -r $R/default-command-s$s/k10-seed$s-pcell-refine8 $P/
    pluralign rl bench --oracle-z position --iql-steps 6000 --iql-hidden 128 --seed $s --goals 10 --policy vpl+spo --relabel-context $c --out $P \
        --dataset $R/default-command-s$s/dataset
  done
done
python benchmarks/rl_paired.py --goals 10 --policy vpl+spo --n 8 \
    --a $R/paired-s36-c2-8 --a $R/paired-s37-c2-8 --a $R/paired-s38-c2-8 \
    --b $R/paired-s36-c8 --b $R/paired-s37-c8 --b $R/paired-s38-c8
