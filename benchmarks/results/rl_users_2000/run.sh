#!/bin/sh
# --iql-steps 6000: the default when this ran (9,000 beyond five goals since 2026-12-03, ../rl_iql_steps_many/)
# VPL + SPO with 2,000 labelling users (README.md here: the rule), tuning seeds 0, 20, 21 side by
# side on one thread each; the baseline is ../rl_iql_width/tune-s*.
R=runs/rl-users2000
for s in ${@:-0 20 21}; do
  [ -f $R/s$s/maze-10goals.json ] && continue
  mkdir -p $R/s$s
  (export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
   pluralign rl bench --oracle-z position --iql-steps 6000 --iql-hidden 256 --seed $s --policy vpl+spo --users 2000 --out $R/s$s 2>&1 | grep -av "Gym\|gym\|Adroit" > $R/s$s/log.txt) &
done
wait
