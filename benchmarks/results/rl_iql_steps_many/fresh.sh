#!/bin/sh
# Fresh seeds (README.md here): VPL + SPO with 10 goals at 9,000 IQL steps (the default beyond
# five goals since this record), then at 6,000 on a copy of that run's reward models and dataset;
# with ORACLE=1 the oracle (the bench's default code of the goal) at both after them, with
# ORACLE=only the oracle alone (on the dataset and round-one model of a finished first run). With no seeds, the
# paired differences over 53, 54 and 55.
set -e
R=runs/rl-iql-steps-fresh
bench() {  # out steps policy [dataset-run]
  o=$1; st=$2; p=$3; src=$4
  grep -qs '"config"' $o/maze-10goals.json && return 0
  mkdir -p $o
  if [ -n "$src" ]; then
    [ -d $o/k10-seed$s-pcell-refine8 ] || cp -r $src/k10-seed$s-pcell-refine8 $o/
    set -- --dataset $src/dataset
  else
    set --
  fi
  pluralign rl bench --seed $s --goals 10 --policy $p --iql-steps $st --out $o "$@" \
    2>&1 | grep -av "Gym\|gym\|Adroit" > $o/log.txt
}
one() {
  s=$1; a=$R/s$s-9000
  o=${ORACLE:-0}  # the defaults' arms first, so that a stopped run has them
  [ $o = only ] || bench $a 9000 vpl+spo
  [ $o = 0 ] || bench $R/s$s-oracle-9000 9000 oracle $a
  [ $o = only ] || bench $R/s$s-6000 6000 vpl+spo $a
  [ $o = 0 ] || bench $R/s$s-oracle-6000 6000 oracle $a
}
if [ $# -gt 0 ]; then
  for s in "$@"; do (export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1; one $s) & done
  wait; exit 0
fi
A="--a $R/s53-6000 --a $R/s54-6000 --a $R/s55-6000"
B="--b $R/s53-9000 --b $R/s54-9000 --b $R/s55-9000"
O6="--a $R/s53-oracle-6000 --a $R/s54-oracle-6000 --a $R/s55-oracle-6000"
O9="--a $R/s53-oracle-9000 --a $R/s54-oracle-9000 --a $R/s55-oracle-9000"
{
  python benchmarks/rl_paired.py --goals 10 --policy vpl+spo --n 8 $A $B
  python benchmarks/rl_paired.py --goals 10 --policy oracle --n 8 $O6 $(echo $O9 | sed 's/--a/--b/g')
  echo "VPL + SPO (B) minus the oracle (A), at 6,000, then at 9,000:"
  python benchmarks/rl_paired.py --goals 10 --policy oracle --policy-b vpl+spo --n 8 $O6 $(echo $A | sed 's/--a/--b/g')
  python benchmarks/rl_paired.py --goals 10 --policy oracle --policy-b vpl+spo --n 8 $O9 $B
} | tee $R/paired.txt
