#!/bin/sh
# --iql-steps 6000: the default when this ran (9,000 beyond five goals since 2026-12-03, ../rl_iql_steps_many/)
# Tuning (README.md here): VPL + SPO with IQL at VPL Table 3's size for > 5 users (4 x 1024; or
# IQL_HIDDEN x IQL_LAYERS, as run512.sh), 10 goals, tuning seeds; then the paired differences
# against the same command at 2 x 256.
set -e
H=${IQL_HIDDEN:-1024}; L=${IQL_LAYERS:-4}
R=runs/rl-iql-${H}x$L
B=benchmarks/results/rl_comparison_size
one() {
  s=$1; a=$R/s$s
  grep -qs '"config"' $a/maze-10goals.json && return 0
  mkdir -p $a
  pluralign rl bench --oracle-z position --seed $s --goals 10 --policy vpl+spo --iql-steps 6000 --iql-hidden $H --iql-layers $L --out $a \
    2>&1 | grep -av "Gym\|gym\|Adroit" > $a/log.txt
}
if [ $# -gt 0 ]; then
  for s in "$@"; do (export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1; one $s) & done
  wait; exit 0
fi
python benchmarks/rl_paired.py --goals 10 --policy vpl+spo --n 8 \
  --a $B/s0-c500 --a $B/s20-c500 --a $B/s21-c500 --b $R/s0 --b $R/s20 --b $R/s21 \
  | tee $R/paired.txt
