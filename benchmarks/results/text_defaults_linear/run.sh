# The default Mix-BTL (linear term + penalised MLP, since 7628c95) beside the previous one
# (--preset tuned-no-lapse) on the text sets of benchmarks/results/text_defaults/run.sh (data
# seed 3, split by prompt, test split): nothing was chosen on these data.
set -e
P=.venv/bin/pluralign
for data in corpus-2mode corpus-format; do
  $P data text $data --users-per-type 20 --pairs-per-user 160 --no-split --seed 3 --out runs/textcmp/$data.jsonl
  $P train --data runs/textcmp/$data.jsonl --out runs/textcmp2/$data-mix-btl
  $P train --data runs/textcmp/$data.jsonl --preset tuned-no-lapse --out runs/textcmp2/$data-mix-btl-previous
  $P eval runs/textcmp2/$data-mix-btl runs/textcmp2/$data-mix-btl-previous --data runs/textcmp/$data.jsonl \
      --out runs/textcmp2/$data-eval.json
done
