#!/bin/sh
# Fresh seeds (README.md here): VPL + SPO and the oracle with 10 goals at 9,000 IQL steps (the
# default beyond five goals since this record), then both at 6,000 on a copy of that run's reward
# models and dataset; with no seeds, the paired differences over 53 (seed53.sh), 54 and 55.
set -e
R=runs/rl-iql-steps-fresh
one() {
  s=$1; a=$R/s$s-9000; b=$R/s$s-6000
  if ! grep -qs '"config"' $a/maze-10goals.json; then
    mkdir -p $a
    pluralign rl bench --seed $s --goals 10 --policy vpl+spo --policy oracle --iql-steps 9000 --out $a \
      2>&1 | grep -av "Gym\|gym\|Adroit" > $a/log.txt
  fi
  grep -qs '"config"' $b/maze-10goals.json && return 0
  mkdir -p $b && cp -r $a/k10-seed$s-pcell-refine8 $b/
  pluralign rl bench --seed $s --goals 10 --policy vpl+spo --policy oracle --iql-steps 6000 --out $b --dataset $a/dataset \
    2>&1 | grep -av "Gym\|gym\|Adroit" > $b/log.txt
}
if [ $# -gt 0 ]; then
  for s in "$@"; do (export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1; one $s) & done
  wait; exit 0
fi
D=runs/rl-iql-steps-fresh/default-command-s53
A="--a $R/s53-6000 --a $R/s54-6000 --a $R/s55-6000"
B="--b $D --b $R/s54-9000 --b $R/s55-9000"
{
  python benchmarks/rl_paired.py --goals 10 --policy vpl+spo --n 8 $A $B
  python benchmarks/rl_paired.py --goals 10 --policy oracle --n 8 $A $B
  echo "VPL + SPO (B) minus the oracle (A), at 6,000, then at 9,000:"
  python benchmarks/rl_paired.py --goals 10 --policy oracle --policy-b vpl+spo --n 8 $A --b $R/s53-6000 --b $R/s54-6000 --b $R/s55-6000
  python benchmarks/rl_paired.py --goals 10 --policy oracle --policy-b vpl+spo --n 8 --a $D --a $R/s54-9000 --a $R/s55-9000 $B
} | tee $R/paired.txt
