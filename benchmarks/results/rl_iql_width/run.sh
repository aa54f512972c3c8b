#!/bin/sh
# --iql-steps 6000: the default when this ran (9,000 beyond five goals since 2026-12-03, ../rl_iql_steps_many/)
# VPL + SPO with IQL MLPs of width 256 (the paper's, Table 3; --iql-hidden 256), tuning seeds 0, 20,
# 21 (README.md here), each on a copy of its seed's runs/rl-particles/s<seed>-medoid reward models
# and dataset, as ../rl_particles_relabel8/run.sh, whose runs (runs/rl-relabel8/s<seed>, the
# current defaults) are the baseline. Seeds as arguments (default all three).
set -e
for s in ${@:-0 20 21}; do
  M=runs/rl-particles/s$s-medoid
  DS="--dataset runs/rl-particles/s$s-variational/dataset"   # the medoid run read the same one
  [ $s = 0 ] && [ -d runs/rl-default-s0-refine ] && DS="--dataset runs/rl-default-s0-refine/dataset"
  P=runs/rl-iql-width/s$s
  [ -f $P/maze-10goals.json ] && continue
  mkdir -p $P && cp -r $M/k* $P/
  pluralign rl bench --oracle-z position --seed $s --policy vpl+spo --iql-steps 6000 --iql-hidden 256 --out $P $DS
done
