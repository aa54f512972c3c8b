# Mix-BTL with a linear term and a penalised MLP (the default from 7628c95 to 3bb893e) beside the
# default Mix-BTL (the MLP alone) on the text sets of benchmarks/results/text_defaults/run.sh
# (data seed 3, split by prompt, test split). Result files: ../defaults_mix/text-test-s3/.
set -e
P=.venv/bin/pluralign
L=benchmarks/results/defaults_mix/linear-l2-3e-4.yaml
for data in corpus-2mode corpus-format; do
  $P data text $data --users-per-type 20 --pairs-per-user 160 --no-split --seed 3 --out runs/textcmp/$data.jsonl
  $P train --data runs/textcmp/$data.jsonl --config $L --out runs/textcmp2/$data-mix-btl
  $P train --data runs/textcmp/$data.jsonl --out runs/textcmp2/$data-mix-btl-previous
  $P eval runs/textcmp2/$data-mix-btl runs/textcmp2/$data-mix-btl-previous --data runs/textcmp/$data.jsonl \
      --out runs/textcmp2/$data-eval.json
done
