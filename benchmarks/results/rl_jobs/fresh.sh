#!/bin/sh
# More fresh seeds for issue 14's 10-goal target (README.md here): VPL + SPO and the oracle at
# the defaults, 10 goals, in one run each (policies in workers). With no seeds: VPL + SPO with
# active answers against the oracle at n = 8 over the fresh seeds 53-55 (session 25, each policy
# in its own run), 56 (the plain command) and the seeds run here.
set -e
R=runs/rl-jobs
if [ $# -gt 0 ]; then
  for s in "$@"; do
    o=$R/s$s
    grep -qs '"config"' $o/maze-10goals.json && continue
    mkdir -p $o
    pluralign rl bench --seed $s --goals 10 --policy vpl+spo --policy oracle --out $o 2>&1 | grep -av "Gym\|gym\|Adroit" > $o/log.txt
    mkdir -p benchmarks/results/rl_jobs/s$s
    cp $o/log.txt $o/maze-10goals.* benchmarks/results/rl_jobs/s$s/
  done
  exit 0
fi
F=benchmarks/results/rl_iql_steps_many/fresh
H=benchmarks/results/rl_jobs
A="--a $F/s53-oracle-9000 --a $F/s54-oracle-9000 --a $F/s55-oracle-9000 --a $H/default-command-s56"
B="--b $F/s53-9000 --b $F/s54-9000 --b $F/s55-9000 --b $H/default-command-s56"
for d in $H/s*/; do
  [ -f $d/maze-10goals.json ] && A="$A --a $d" && B="$B --b $d"
done
echo "VPL + SPO (B) minus the oracle (A), 10 goals, n = 8, fresh seeds at the defaults:" | tee $H/paired.txt
python benchmarks/rl_paired.py --goals 10 --policy oracle --policy-b vpl+spo --n 8 $A $B | tee -a $H/paired.txt
