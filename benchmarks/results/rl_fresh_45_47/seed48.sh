#!/bin/sh
# --iql-steps 6000: the default when this ran (9,000 beyond five goals since 2026-12-03, ../rl_iql_steps_many/)
# Report (README.md here, addendum): the plain command at the default list with VPL + max-norm, alone
# on both cores, on fresh seed 48: its wall time, and one more seed of every default policy. Then the
# seven-seed aggregate 42-48, identification on all seven, and VPL + max-norm's paired differences on
# 45-48 (run.sh 45 46 47 first: it makes the seeds 45-47 runs).
set -e
R=runs/rl-fresh-256; K=benchmarks/results/rl_fresh_42_44   # seeds 42-44's kept results
d=$R/default-command-s48
if ! grep -qs '"config"' $d/maze-10goals.json; then
  mkdir -p $d
  /usr/bin/time -p -o $d/time.txt pluralign rl bench --oracle-z position --iql-steps 6000 --iql-hidden 256 --seed 48 --out $d 2>&1 | grep -av "Gym\|gym\|Adroit" > $d/log.txt
fi
pluralign rl aggregate $K/default-command-s42 $K/default-command-s43 $K/default-command-s44 \
    $R/default-command-s45 $R/default-command-s46 $R/default-command-s47 $d --out $R/default-command-seeds-42-48
python benchmarks/rl_goal_identification.py --seed 42 --seed 43 --seed 44 --seed 45 --seed 46 --seed 47 --seed 48 \
    --goals 10 --queries 8 --bench $K/default-command-s42 --bench $K/default-command-s43 --bench $K/default-command-s44 \
    --bench $R/default-command-s45 --bench $R/default-command-s46 --bench $R/default-command-s47 --bench $d --out $R/ident-s42-48
for p in vpl+spo oracle; do   # seed 48's run has VPL + max-norm in it
  python benchmarks/rl_paired.py --goals 10 --policy $p --policy-b vpl+maxnorm --n 8 \
    --a $R/default-command-s45 --a $R/default-command-s46 --a $R/default-command-s47 --a $d \
    --b $R/vplmax-s45 --b $R/vplmax-s46 --b $R/vplmax-s47 --b $d
done | tee $R/vplmax-paired-45-48.txt
