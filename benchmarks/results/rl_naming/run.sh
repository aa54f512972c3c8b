#!/bin/sh
# Issue 14: reward-model settings against how often VPL names a test user's goal (10 goals), on the
# tuning seeds 0 and 20, without training a policy (benchmarks/rl_goal_identification.py, docs/rl.md).
# defaults.json: the bench's own default VPL models (the IQL-steps tuning's runs, benchmarks/results/rl_iql_steps);
# beta-0.01.log, users-5000.log, reward-hidden-256.log (+ .json): models trained by the script with one
# setting changed; active-pool-2000.log: the default models asking from 2,000 pairs instead of 500;
# particles-512.log: the default models, the goal named by a particle posterior over 512 training users' z.
set -e
. benchmarks/results/rl_tuning.sh
G="python benchmarks/rl_goal_identification.py --seed 0 --seed 20 --goals 10 --model vpl --queries 4 --queries 8 --dataset $DATA"
$G --bench runs/rl-iql/s0-i6000 --bench runs/rl-iql/s20-i6000 --out runs/rl-naming/defaults
for T in vpl_beta_max=0.01 n_users=5000 reward_hidden=256; do
  $G --train $T --out runs/rl-naming/$T
done
$G --bench runs/rl-iql/s0-i6000 --bench runs/rl-iql/s20-i6000 --active-pool 2000 --out runs/rl-naming/active_pool=2000
$G --bench runs/rl-iql/s0-i6000 --bench runs/rl-iql/s20-i6000 --particles 512 --out runs/rl-naming/particles512
