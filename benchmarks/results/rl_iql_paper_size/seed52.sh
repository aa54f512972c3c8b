#!/bin/sh
# --iql-steps 6000: the default when this ran (9,000 beyond five goals since 2026-12-03, ../rl_iql_steps_many/)
# A report (README.md here): the plain command at the new defaults on fresh seed 52, alone, timed.
set -e
d=runs/rl-iql-fresh/default-command-s52
mkdir -p $d
/usr/bin/time -p -o $d/time.txt pluralign rl bench --oracle-z position --iql-steps 6000 --seed 52 --out $d 2>&1 | grep -av "Gym\|gym\|Adroit" > $d/log.txt
cat $d/time.txt
