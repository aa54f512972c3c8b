#!/bin/sh
# VPL + SPO with the paper's q(z | answers) and with the particle posterior, tuning seeds 0, 20, 21
# (README.md here). Each seed's particle run reuses the variational run's dataset and reward models,
# so IQL trains the same policy and only the test users' z and VPL's active questions differ.
# About 5 min per seed for the variational run (it trains the reward models), 3 for each other.
# Seed 0 reuses the plain command's run of that seed when it is there (runs/rl-default-s0-refine).
set -e
for s in 0 20 21; do
  V=runs/rl-particles/s$s-variational
  DS="--dataset $V/dataset"
  if [ $s = 0 ] && [ -d runs/rl-default-s0-refine ]; then
    mkdir -p $V && cp -r runs/rl-default-s0-refine/k*-seed0-pcell-refine8 $V/
    DS="--dataset runs/rl-default-s0-refine/dataset"
  fi
  [ -f $V/maze-10goals.json ] || pluralign rl bench --oracle-z position --seed $s --policy vpl+spo --vpl-posterior variational --out $V \
      $( [ $s = 0 ] && echo "$DS" )
  P=runs/rl-particles/s$s-medoid      # the heaviest particle, the first form, was `particles` at git a0e352e
  mkdir -p $P && cp -r $V/k* $P/
  pluralign rl bench --oracle-z position --seed $s --policy vpl+spo --vpl-posterior particles --out $P $DS
done
