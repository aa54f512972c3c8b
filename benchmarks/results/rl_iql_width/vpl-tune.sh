#!/bin/sh
# --iql-steps 6000: the default when this ran (9,000 beyond five goals since 2026-12-03, ../rl_iql_steps_many/)
# Unscaled VPL at IQL width 256 on the tuning seeds 0, 20, 21, 10 goals (a report, after fresh seeds
# 42-44 put it ahead of VPL + SPO; README.md here): the same reward models as tune-s* (the bench's
# reward training is deterministic per seed), side by side on one thread each.
for s in 0 20 21; do
  (export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
   pluralign rl bench --oracle-z position --iql-steps 6000 --iql-hidden 256 --seed $s --goals 10 --policy vpl --out runs/rl-vpl256/s$s 2>&1 | grep -av "Gym\|gym\|Adroit" > runs/rl-vpl256/s$s.log) &
done
wait
