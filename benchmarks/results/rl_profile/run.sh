#!/bin/sh
# VPL + SPO with the policy reading a reward profile of z (or with `peak` as $1, where that reward
# is highest), tuning seeds 0, 20, 21 (README.md here).
# Each run reuses the dataset and reward models of its seed's runs/rl-particles/s<seed>-medoid run
# (benchmarks/results/rl_particles/run.sh), so only what the policy reads of z differs. ~3 min a seed.
set -e
HOW=${1:-profile}
for s in 0 20 21; do
  M=runs/rl-particles/s$s-medoid
  DS="--dataset runs/rl-particles/s$s-variational/dataset"   # the medoid run read the same one
  [ $s = 0 ] && [ -d runs/rl-default-s0-refine ] && DS="--dataset runs/rl-default-s0-refine/dataset"
  P=runs/rl-profile/s$s-$HOW
  [ -f $P/maze-10goals.json ] && continue
  mkdir -p $P && cp -r $M/k* $P/
  pluralign rl bench --oracle-z position --seed $s --policy vpl+spo --vpl-policy-z $HOW --out $P $DS
done
