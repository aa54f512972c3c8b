#!/bin/sh
# Report (README.md here, addendum): the plain command at the default list with VPL + max-norm, alone
# on both cores, on fresh seed 48: its wall time, and one more seed of every default policy.
set -e
d=runs/rl-fresh-256/default-command-s48
mkdir -p $d
/usr/bin/time -p -o $d/time.txt pluralign rl bench --seed 48 --out $d 2>&1 | grep -av "Gym\|gym\|Adroit" > $d/log.txt
