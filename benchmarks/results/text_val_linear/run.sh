# Validation evidence on text for Mix-BTL with a linear term and a penalised MLP against the
# default Mix-BTL (the MLP alone): data seed 2 (a tuning seed), three training/split seeds each,
# scored on each pair's own validation split (the test split is not read).
# usage: bash benchmarks/results/text_val_linear/run.sh corpus-format   (or corpus-2mode)
set -e
P=.venv/bin/pluralign
L=benchmarks/results/defaults_mix/linear-l2-3e-4.yaml
data=$1
O=runs/textval/$data
mkdir -p $O
$P data text $data --users-per-type 20 --pairs-per-user 160 --no-split --seed 2 --out $O/data.jsonl
for s in 0 1 2; do
  $P train --data $O/data.jsonl --seed $s --config $L --out $O/s$s-default
  $P train --data $O/data.jsonl --seed $s --out $O/s$s-previous
  $P eval $O/s$s-default $O/s$s-previous --data $O/data.jsonl --split validation --out $O/s$s-eval.json
done
