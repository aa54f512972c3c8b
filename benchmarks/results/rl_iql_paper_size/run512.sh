#!/bin/sh
# Tuning (README.md here): run.sh at 2 x 512, the size that fits the budget.
IQL_HIDDEN=512 IQL_LAYERS=2 exec sh benchmarks/results/rl_iql_paper_size/run.sh "$@"
