#!/bin/sh
# Tuning (README.md here): VPL + SPO and the oracle with 10 goals at 9,000 and 12,000 IQL steps,
# the oracle at 6,000, on the same reward models; then the paired differences.
set -e
R=runs/rl-iql-steps-many
P=benchmarks/results/rl_iql_paper_size/tune512
bench() {  # out steps policies...
  o=$1; st=$2; shift 2
  grep -qs '"config"' $o/maze-10goals.json && return 0
  mkdir -p $o
  pluralign rl bench --oracle-z position --seed $s --goals 10 --iql-steps $st "$@" --out $o $D 2>&1 | grep -av "Gym\|gym\|Adroit" > $o/log.txt
}
one() {
  s=$1; a=$R/s$s-9000; D=""
  bench $a 9000 --policy vpl+spo --policy oracle
  D="--dataset $a/dataset"
  for b in $R/s$s-12000 $R/s$s-oracle6000; do
    [ -d $b/k10-seed$s-pcell-refine8 ] || { mkdir -p $b && cp -r $a/k10-seed$s-pcell-refine8 $b/; }
  done
  bench $R/s$s-oracle6000 6000 --policy oracle
  [ "${SKIP_12000:-0}" = 1 ] || bench $R/s$s-12000 12000 --policy vpl+spo --policy oracle
}
if [ $# -gt 0 ]; then
  for s in "$@"; do (export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1; one $s) & done
  wait; exit 0
fi
A6="--a $P/s0 --a $P/s20 --a $P/s21"; B6="--b $P/s0 --b $P/s20 --b $P/s21"
O6="--a $R/s0-oracle6000 --a $R/s20-oracle6000 --a $R/s21-oracle6000"
B9="--b $R/s0-9000 --b $R/s20-9000 --b $R/s21-9000"
B12="--b $R/s0-12000 --b $R/s20-12000 --b $R/s21-12000"
{
  echo "VPL + SPO: 6,000 (A) against 9,000 (B), then against 12,000 (B):"
  python benchmarks/rl_paired.py --goals 10 --policy vpl+spo --n 8 $A6 $B9
  python benchmarks/rl_paired.py --goals 10 --policy vpl+spo --n 8 $A6 $B12
  echo "the oracle: 6,000 (A) against 9,000 (B), then against 12,000 (B):"
  python benchmarks/rl_paired.py --goals 10 --policy oracle --n 8 $O6 $B9
  python benchmarks/rl_paired.py --goals 10 --policy oracle --n 8 $O6 $B12
  echo "VPL + SPO (B) minus the oracle (A) at 6,000, 9,000, 12,000:"
  python benchmarks/rl_paired.py --goals 10 --policy oracle --policy-b vpl+spo --n 8 $O6 $B6
  python benchmarks/rl_paired.py --goals 10 --policy oracle --policy-b vpl+spo --n 8 --a $R/s0-9000 --a $R/s20-9000 --a $R/s21-9000 $B9
  python benchmarks/rl_paired.py --goals 10 --policy oracle --policy-b vpl+spo --n 8 --a $R/s0-12000 --a $R/s20-12000 --a $R/s21-12000 $B12
} | tee $R/paired.txt
