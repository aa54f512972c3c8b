#!/bin/sh
# A report (README.md here): the plain command at the new defaults (9,000 IQL steps beyond five
# goals) on fresh seed 53, alone, timed; then VPL + SPO and the oracle at 6,000 on its reward models.
set -e
R=runs/rl-iql-steps-fresh
d=$R/default-command-s53; b=$R/s53-6000
if ! grep -qs '"config"' $d/maze-10goals.json; then
  mkdir -p $d
  /usr/bin/time -p -o $d/time.txt pluralign rl bench --seed 53 --out $d 2>&1 | grep -av "Gym\|gym\|Adroit" > $d/log.txt
fi
cat $d/time.txt
grep -qs '"config"' $b/maze-10goals.json && exit 0
mkdir -p $b && cp -r $d/k10-seed53-pcell-refine8 $b/
pluralign rl bench --seed 53 --goals 10 --policy vpl+spo --policy oracle --iql-steps 6000 --out $b --dataset $d/dataset \
  2>&1 | grep -av "Gym\|gym\|Adroit" > $b/log.txt
