set -e
P=.venv/bin/pluralign
for data in corpus-2mode corpus-format; do
  $P data text $data --users-per-type 20 --pairs-per-user 160 --no-split --seed 3 --out runs/textcmp/$data.jsonl
  for m in mix-btl np-btl; do
    /usr/bin/time -f "$data $m %e s wall" $P train --data runs/textcmp/$data.jsonl --model $m --out runs/textcmp/$data-$m
  done
  $P eval runs/textcmp/$data-mix-btl runs/textcmp/$data-np-btl --data runs/textcmp/$data.jsonl --out runs/textcmp/$data-eval.json
done
