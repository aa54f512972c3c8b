#!/bin/sh
# Issue 14: IQL gradient steps for the z-conditioned policy (the bench's default 2,000 were chosen
# on the oracle, which is told the goal's position), tuned on the tuning seeds 0 and 20 with
# VPL + SPO only and random queries, pcell / 4,000 reward steps as the bench's defaults. The
# reward models are the state-view tuning's (benchmarks/results/rl_state_view/run.sh), copied
# when found; the 2,000-step rows are that script's pcell-r4000 runs.
set -e
. benchmarks/results/rl_tuning.sh
B="pluralign rl bench --oracle-z position --policy vpl+spo --queries 4 --queries 8 --queries-strategy random --dataset $DATA"
for K in ${GOALS:-10}; do for S in 0 20; do for I in ${STEPS:-6000}; do
  OUT=runs/rl-iql/s$S-i$I
  reuse_view_models $K $S $OUT
  $B --seed $S --goals $K --iql-steps $I --out $OUT
done; done; done
