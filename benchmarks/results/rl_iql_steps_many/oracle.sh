#!/bin/sh
# The oracle told the goal as a one-hot (README.md here), 9,000 IQL steps, on the tuning seeds'
# datasets and round-one models from run.sh.
set -e
R=runs/rl-iql-steps-many
for s in "$@"; do
  (export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
   a=$R/s$s-9000; o=$R/s$s-oracle-goal
   grep -qs '"config"' $o/maze-10goals.json && exit 0
   mkdir -p $o && cp -r $a/k10-seed$s-pcell-refine8 $o/
   pluralign rl bench --seed $s --goals 10 --policy oracle --oracle-z goal --iql-steps 9000 --out $o \
     --dataset $a/dataset 2>&1 | grep -av "Gym\|gym\|Adroit" > $o/log.txt) &
done
wait
