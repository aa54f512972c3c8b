#!/bin/sh
# --iql-steps 6000: the default when this ran (9,000 beyond five goals since 2026-12-03, ../rl_iql_steps_many/)
# VPL + SPO relabelled with z of 8 pairs (--relabel-context 8), tuning seeds 0, 20, 21 (README.md
# here), each on a copy of its seed's runs/rl-particles/s<seed>-medoid reward models and dataset.
# --iql-hidden 128: the default when this ran (256 since 2026-12-03, ../rl_iql_width/)
set -e
for s in 0 20 21; do
  M=runs/rl-particles/s$s-medoid
  DS="--dataset runs/rl-particles/s$s-variational/dataset"   # the medoid run read the same one
  [ $s = 0 ] && [ -d runs/rl-default-s0-refine ] && DS="--dataset runs/rl-default-s0-refine/dataset"
  P=runs/rl-relabel8/s$s
  [ -f $P/maze-10goals.json ] && continue
  mkdir -p $P && cp -r $M/k* $P/
  pluralign rl bench --oracle-z position --iql-steps 6000 --iql-hidden 128 --seed $s --policy vpl+spo --relabel-context 8 --out $P $DS
done
