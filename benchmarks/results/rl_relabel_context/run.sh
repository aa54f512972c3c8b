#!/bin/sh
# Issue 14: how many of a training user's pairs the z that relabels an episode comes from
# (--relabel-context; the default 2-8 is the reward models' own context range), tuned on the
# tuning seeds 0 and 20 with VPL + SPO only and random queries, pcell / 4,000 steps as the bench's
# defaults (docs/rl.md, "How many pairs the relabelling z comes from"). The reward models are the
# ones the state-view tuning trained (benchmarks/results/rl_state_view/run.sh), copied when found
# so that only relabelling and IQL run; the 2-8 rows are that script's pcell-r4000 runs. Run with
# 10 goals only (where the conditioning loses most); GOALS="10 2" adds 2 goals (not run: 10 goals
# showed no gain, so nothing was adopted).
set -e
. benchmarks/results/rl_tuning.sh
B="pluralign rl bench --oracle-z position --iql-steps 2000 --policy vpl+spo --queries 4 --queries 8 --queries-strategy random --dataset $DATA"
for K in ${GOALS:-10}; do for S in 0 20; do for C in 8 8-16; do
  OUT=runs/rl-ctx/s$S-c$C
  reuse_view_models $K $S $OUT
  $B --seed $S --goals $K --relabel-context $C --out $OUT
done; done; done
