#!/bin/sh
# --iql-steps 6000: the default when this ran (9,000 beyond five goals since 2026-12-03, ../rl_iql_steps_many/)
# VPL + max-norm (App. D.3) at IQL width 256 on the tuning seeds 0, 20, 21, 10 goals: a report
# beside vpl-tune.sh (README.md here), on copies of that run's reward models and datasets.
for s in 0 20 21; do
  [ -d runs/rl-vplmax/s$s ] || { mkdir -p runs/rl-vplmax/s$s; cp -r runs/rl-vpl256/s$s/k10-seed$s-pcell-refine8 runs/rl-vpl256/s$s/dataset runs/rl-vplmax/s$s/; }
  (export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
   pluralign rl bench --oracle-z position --iql-steps 6000 --iql-hidden 256 --seed $s --goals 10 --policy vpl+maxnorm --out runs/rl-vplmax/s$s 2>&1 | grep -av "Gym\|gym\|Adroit" > runs/rl-vplmax/s$s.log) &
done
wait
