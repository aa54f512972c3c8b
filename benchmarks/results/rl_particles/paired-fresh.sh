#!/bin/sh
# Report, not tuning: VPL + SPO alone, 10 goals, on the fresh seeds 33-35, with each posterior, on the
# reward models and dataset of the plain command's run of the seed (so the two runs of a seed train
# the same policy and differ only in the test users' z and VPL's active questions). ~2 min a run.
set -e
for s in 33 34 35; do
  for post in variational particles; do
    P=runs/rl-particles/paired-s$s-$post
    mkdir -p $P && cp -r runs/rl-particles/default-command-s$s/k10-seed$s-pcell-refine8 $P/
    pluralign rl bench --oracle-z position --seed $s --goals 10 --policy vpl+spo --vpl-posterior $post --out $P \
        --dataset runs/rl-particles/default-command-s$s/dataset
  done
done
python benchmarks/rl_paired.py --goals 10 --policy vpl+spo --n 8 \
    --a runs/rl-particles/paired-s33-variational --a runs/rl-particles/paired-s34-variational \
    --a runs/rl-particles/paired-s35-variational --b runs/rl-particles/paired-s33-particles \
    --b runs/rl-particles/paired-s34-particles --b runs/rl-particles/paired-s35-particles
