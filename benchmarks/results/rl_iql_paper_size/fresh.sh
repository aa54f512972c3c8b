#!/bin/sh
# --iql-steps 6000: the default when this ran (9,000 beyond five goals since 2026-12-03, ../rl_iql_steps_many/)
# Fresh seeds (README.md here): VPL + SPO and the oracle, 10 goals, IQL 2 x 512 (the new default
# for more than five goals), then both at 2 x 256 on a copy of that run's reward models and dataset.
set -e
R=runs/rl-iql-fresh
one() {
  s=$1; a=$R/s$s-h512; b=$R/s$s-h256
  if ! grep -qs '"config"' $a/maze-10goals.json; then
    mkdir -p $a
    pluralign rl bench --oracle-z position --seed $s --goals 10 --policy vpl+spo --policy oracle --iql-steps 6000 --iql-hidden 512 --out $a \
      2>&1 | grep -av "Gym\|gym\|Adroit" > $a/log.txt
  fi
  grep -qs '"config"' $b/maze-10goals.json && return 0
  mkdir -p $b && cp -r $a/k10-seed$s-pcell-refine8 $b/
  pluralign rl bench --oracle-z position --seed $s --goals 10 --policy vpl+spo --policy oracle --iql-steps 6000 --iql-hidden 256 --out $b --dataset $a/dataset \
    2>&1 | grep -av "Gym\|gym\|Adroit" > $b/log.txt
}
if [ $# -gt 0 ]; then
  for s in "$@"; do (export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1; one $s) & done
  wait; exit 0
fi
A="--a $R/s49-h256 --a $R/s50-h256 --a $R/s51-h256"
B="--b $R/s49-h512 --b $R/s50-h512 --b $R/s51-h512"
{
  python benchmarks/rl_paired.py --goals 10 --policy vpl+spo --n 8 $A $B
  python benchmarks/rl_paired.py --goals 10 --policy oracle --n 8 $A $B
  echo "VPL + SPO (B) minus the oracle (A), at 2 x 256, then at 2 x 512:"
  python benchmarks/rl_paired.py --goals 10 --policy oracle --policy-b vpl+spo --n 8 $A --b $R/s49-h256 --b $R/s50-h256 --b $R/s51-h256
  python benchmarks/rl_paired.py --goals 10 --policy oracle --policy-b vpl+spo --n 8 --a $R/s49-h512 --a $R/s50-h512 --a $R/s51-h512 $B
} | tee $R/paired.txt
