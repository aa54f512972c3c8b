#!/bin/sh
# Issue 14: the reward models' view of the state (--state-view raw | pcell), tuned on the tuning
# seeds 0 and 20 with VPL + SPO only and random queries (docs/rl.md, "The reward models' view of
# the state in the bench"). Every run reuses one dataset (the generator has its own seed, so every
# bench seed makes the same one). About 2-6 minutes per line on 2 busy cores.
set -e
. benchmarks/results/rl_tuning.sh
B="pluralign rl bench --oracle-z position --iql-steps 2000 --policy vpl+spo --queries 4 --queries 8 --queries-strategy random --dataset $DATA"
for K in 2 10; do
  # seed 0: the paper's label count, then 1,000 users x 80 pairs (80k labels, the paper's scale)
  $B --seed 0 --goals $K --state-view raw --out runs/rl-view/raw
  $B --seed 0 --goals $K --state-view pcell --out runs/rl-view/pcell
  $B --seed 0 --goals $K --state-view pcell --reward-steps 4000 --out runs/rl-view/pcell-r4000
  $B --seed 0 --goals $K --state-view raw --users 1000 --pairs-per-user 80 --out runs/rl-view/raw-u1000-p80
  $B --seed 0 --goals $K --state-view pcell --users 1000 --pairs-per-user 80 --out runs/rl-view/pcell-u1000-p80
  $B --seed 0 --goals $K --state-view pcell --users 1000 --pairs-per-user 80 --reward-steps 4000 --out runs/rl-view/pcell-u1000-p80-r4000
  # seed 20: the view x reward steps, default labels
  for r in 1000 4000; do for v in pcell raw; do
    $B --seed 20 --goals $K --state-view $v --reward-steps $r --out runs/rl-view/s20-$v-r$r
  done; done
done
$B --seed 0 --goals 10 --state-view raw --users 1000 --pairs-per-user 80 --reward-steps 4000 --out runs/rl-view/raw-u1000-p80-r4000
