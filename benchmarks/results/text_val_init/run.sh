# Validation evidence on text for Mix-BTL with a small initialisation (init_scale 0.1 or 0.3) against
# the MLP at PyTorch's initialisation: data seed 2 (a tuning seed), three training/split seeds,
# scored on each run's validation split (the test split is not read). The data and the
# comparison runs are those of text_val_linear/run.sh (made here when missing).
# usage: bash benchmarks/results/text_val_init/run.sh corpus-format [0.1|0.3]   (or corpus-2mode)
set -e
P=.venv/bin/pluralign
data=$1
scale=${2:-0.1}
C=benchmarks/results/defaults_mix/init-$scale.yaml
O=runs/textval/$data
mkdir -p $O
[ -f $O/data.jsonl ] || $P data text $data --users-per-type 20 --pairs-per-user 160 --no-split --seed 2 --out $O/data.jsonl
for s in 0 1 2; do
  [ -f $O/s$s-previous/run.json ] || $P train --data $O/data.jsonl --seed $s --out $O/s$s-previous
  $P train --data $O/data.jsonl --seed $s --config $C --out $O/s$s-init$scale
  $P eval $O/s$s-init$scale $O/s$s-previous --data $O/data.jsonl --split validation --out $O/s$s-init$scale-eval.json
done
