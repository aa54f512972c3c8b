#!/bin/sh
# Tuning (README.md here): VPL + SPO with IQL at 2 x 512, the size that fits the budget,
# 10 goals, tuning seeds; then the paired differences against the same command at 2 x 256.
set -e
R=runs/rl-iql-512
B=benchmarks/results/rl_comparison_size
one() {
  s=$1; a=$R/s$s
  grep -qs '"config"' $a/maze-10goals.json && return 0
  mkdir -p $a
  pluralign rl bench --seed $s --goals 10 --policy vpl+spo --iql-hidden 512 --iql-layers 2 --out $a \
    2>&1 | grep -av "Gym\|gym\|Adroit" > $a/log.txt
}
if [ $# -gt 0 ]; then
  for s in "$@"; do (export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1; one $s) & done
  wait; exit 0
fi
python benchmarks/rl_paired.py --goals 10 --policy vpl+spo --n 8 \
  --a $B/s0-c500 --a $B/s20-c500 --a $B/s21-c500 --b $R/s0 --b $R/s20 --b $R/s21 \
  | tee $R/paired.txt
