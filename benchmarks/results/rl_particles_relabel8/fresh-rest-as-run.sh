# --iql-hidden 128: the default when this ran (256 since 2026-12-03, ../rl_iql_width/)
# --iql-steps 6000: the default when this ran (9,000 beyond five goals since 2026-12-03, ../rl_iql_steps_many/)
set -e
cd /work/main
R=runs/rl-relabel8
run_pair() { s=$1; for c in 2-8 8; do
    P=$R/paired-s$s-c$c
    mkdir -p $P && cp -r $R/default-command-s$s/k10-seed$s-pcell-refine8 $P/
    pluralign rl bench --oracle-z position --iql-steps 6000 --iql-hidden 128 --seed $s --goals 10 --policy vpl+spo --relabel-context $c --out $P \
        --dataset $R/default-command-s$s/dataset
  done; }
run_pair 36
run_pair 37
while [ ! -s $R/default-command-s38/time.txt ]; do sleep 20; done
pluralign rl aggregate $R/default-command-s36 $R/default-command-s37 $R/default-command-s38 \
    --out $R/default-command-seeds-36-38
run_pair 38
python benchmarks/rl_paired.py --goals 10 --policy vpl+spo --n 8 \
    --a $R/paired-s36-c2-8 --a $R/paired-s37-c2-8 --a $R/paired-s38-c2-8 \
    --b $R/paired-s36-c8 --b $R/paired-s37-c8 --b $R/paired-s38-c8
