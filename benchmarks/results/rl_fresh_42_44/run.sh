#!/bin/sh
# --iql-steps 6000: the default when this ran (9,000 beyond five goals since 2026-12-03, ../rl_iql_steps_many/)
# Report, not tuning (README.md here): the plain command at the current defaults (IQL width 256)
# on fresh seeds 42-44. With seeds as arguments it runs those seeds (several side by side on one
# thread each); without, it aggregates the three and measures 8-random-answer identification.
set -e
R=runs/rl-fresh-256
one() {
  s=$1; d=$R/default-command-s$s
  [ -f $d/maze-10goals.json ] && return 0
  mkdir -p $d
  /usr/bin/time -p -o $d/time.txt pluralign rl bench --oracle-z position --iql-steps 6000 --iql-hidden 256 --seed $s --out $d \
    2>&1 | grep -av "Gym\|gym\|Adroit" > $d/log.txt
}
if [ $# -eq 1 ]; then one $1; exit 0; fi
if [ $# -gt 1 ]; then
  for s in "$@"; do (export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1; one $s) & done
  wait; exit 0
fi
pluralign rl aggregate $R/default-command-s42 $R/default-command-s43 $R/default-command-s44 \
    --out $R/default-command-seeds-42-44
python benchmarks/rl_goal_identification.py --seed 42 --seed 43 --seed 44 --goals 10 --queries 8 \
    --bench $R/default-command-s42 --bench $R/default-command-s43 --bench $R/default-command-s44 --out $R/ident-s42-44
