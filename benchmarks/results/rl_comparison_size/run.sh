#!/bin/sh
# --iql-steps 6000: the default when this ran (9,000 beyond five goals since 2026-12-03, ../rl_iql_steps_many/)
# Tuning (README.md here): VPL + SPO with SPO's comparison set at 500 and at the paper's 1,000 states,
# 10 goals, on each tuning seed's own reward models and dataset; then the paired differences.
set -e
R=runs/rl-comparison-size
one() {
  s=$1; a=$R/s$s-c500; b=$R/s$s-c1000
  if ! grep -qs '"config"' $a/maze-10goals.json; then
    mkdir -p $a
    pluralign rl bench --oracle-z position --iql-steps 6000 --iql-hidden 256 --seed $s --goals 10 --policy vpl+spo --out $a 2>&1 | grep -av "Gym\|gym\|Adroit" > $a/log.txt
  fi
  grep -qs '"config"' $b/maze-10goals.json && return 0
  mkdir -p $b && cp -r $a/k10-seed$s-pcell-refine8 $b/
  pluralign rl bench --oracle-z position --iql-steps 6000 --iql-hidden 256 --seed $s --goals 10 --policy vpl+spo --comparison-size 1000 --out $b --dataset $a/dataset \
    2>&1 | grep -av "Gym\|gym\|Adroit" > $b/log.txt
}
if [ $# -gt 0 ]; then
  for s in "$@"; do (export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1; one $s) & done
  wait; exit 0
fi
python benchmarks/rl_paired.py --goals 10 --policy vpl+spo --n 8 \
  --a $R/s0-c500 --a $R/s20-c500 --a $R/s21-c500 --b $R/s0-c1000 --b $R/s20-c1000 --b $R/s21-c1000 \
  | tee $R/paired.txt
