#!/bin/sh
# --iql-steps 6000: the default when this ran (9,000 beyond five goals since 2026-12-03, ../rl_iql_steps_many/)
# Report, plus one pre-written rule (README.md here): the plain command on fresh seeds 45-47, then
# VPL + max-norm on each seed's own reward models and dataset. With seeds as arguments it runs
# those seeds side by side on one thread each; without, it aggregates and compares.
set -e
R=runs/rl-fresh-256
one() {
  s=$1; d=$R/default-command-s$s; v=$R/vplmax-s$s
  if [ ! -f $d/maze-10goals.json ] || ! grep -q '"config"' $d/maze-10goals.json; then
    mkdir -p $d
    /usr/bin/time -p -o $d/time.txt pluralign rl bench --oracle-z position --iql-steps 6000 --iql-hidden 256 --seed $s --out $d \
      2>&1 | grep -av "Gym\|gym\|Adroit" > $d/log.txt
  fi
  [ -f $v/maze-10goals.json ] && grep -q '"config"' $v/maze-10goals.json && return 0
  mkdir -p $v && cp -r $d/k10-seed$s-pcell-refine8 $v/
  pluralign rl bench --oracle-z position --iql-steps 6000 --iql-hidden 256 --seed $s --goals 10 --policy vpl+maxnorm --out $v --dataset $d/dataset \
    2>&1 | grep -av "Gym\|gym\|Adroit" > $v/log.txt
}
if [ $# -gt 0 ]; then
  for s in "$@"; do (export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1; one $s) & done
  wait; exit 0
fi
pluralign rl aggregate $R/default-command-s45 $R/default-command-s46 $R/default-command-s47 \
    --out $R/default-command-seeds-45-47
K=benchmarks/results/rl_fresh_42_44   # seeds 42-44's kept results (runs/ does not last)
pluralign rl aggregate $K/default-command-s42 $K/default-command-s43 $K/default-command-s44 \
    $R/default-command-s45 $R/default-command-s46 $R/default-command-s47 --out $R/default-command-seeds-42-47
python benchmarks/rl_goal_identification.py --seed 45 --seed 46 --seed 47 --goals 10 --queries 8 \
    --bench $R/default-command-s45 --bench $R/default-command-s46 --bench $R/default-command-s47 --out $R/ident-s45-47
for p in vpl+spo oracle; do
  python benchmarks/rl_paired.py --goals 10 --policy $p --policy-b vpl+maxnorm --n 8 \
    --a $R/default-command-s45 --a $R/default-command-s46 --a $R/default-command-s47 \
    --b $R/vplmax-s45 --b $R/vplmax-s46 --b $R/vplmax-s47
done | tee $R/vplmax-paired-45-47.txt
