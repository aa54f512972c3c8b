#!/bin/sh
# The plain command on fresh seed 56, alone on the machine, timed: `pluralign rl bench` with no
# flag but the seed (policies in worker processes, one per core, the default since 2026-12-03).
# The record (README.md here) keeps its log, results and time; runs/ holds the models.
set -e
d=runs/rl-jobs/default-command-s56
mkdir -p $d
/usr/bin/time -p -o $d/time.txt pluralign rl bench --seed 56 --out $d 2>&1 | grep -av "Gym\|gym\|Adroit" > $d/log.txt
cat $d/time.txt
mkdir -p benchmarks/results/rl_jobs/default-command-s56
cp $d/time.txt $d/log.txt $d/maze-*goals.* benchmarks/results/rl_jobs/default-command-s56/
