#!/bin/sh
# --iql-steps 6000: the default when this ran (9,000 beyond five goals since 2026-12-03, ../rl_iql_steps_many/)
# Report, not tuning (README.md here): the plain command at the current defaults on fresh seeds
# 39-41 (never run before), aggregated alone and with seeds 36-38 (the same defaults), and what 8
# random answers can identify on the new seeds. ~20 min a seed alone on the 2-core CPU.
# --iql-hidden 128: the default when this ran (256 since 2026-12-03, ../rl_iql_width/)
set -e
R=runs/rl-fresh
K=benchmarks/results/rl_particles_relabel8
for s in 39 40 41; do
  [ -f $R/default-command-s$s/maze-10goals.json ] || { mkdir -p $R/default-command-s$s
    /usr/bin/time -p -o $R/default-command-s$s/time.txt pluralign rl bench --oracle-z position --iql-steps 6000 --iql-hidden 128 --seed $s --out $R/default-command-s$s \
      2>&1 | grep -av "Gym\|gym\|Adroit" > $R/default-command-s$s/log.txt; }
done
pluralign rl aggregate $R/default-command-s39 $R/default-command-s40 $R/default-command-s41 \
    --out $R/default-command-seeds-39-41
pluralign rl aggregate $K/default-command-s36 $K/default-command-s37 $K/default-command-s38 \
    $R/default-command-s39 $R/default-command-s40 $R/default-command-s41 --out $R/default-command-seeds-36-41
python benchmarks/rl_goal_identification.py --seed 39 --seed 40 --seed 41 --goals 10 --queries 8 \
    --bench $R/default-command-s39 --bench $R/default-command-s40 --bench $R/default-command-s41 --out $R/ident-s39-41
