"""What the default's init-scale selection does on the text validation runs of run.sh: for each
data set and training seed, the candidate (init_scale 1.0 = the `previous` run, 0.1 = `init0.1`)
with the lower in-loop validation NLL, and its validation accuracy against the 1.0 run's. The
selection in `pluralign train` trains exactly these two runs (the same seed, data and settings),
so this reads what it would choose. Writes benchmarks/results/defaults_mix/text-val-s2-init/selection.json.

    python benchmarks/results/text_val_init/select.py
"""
import json
from pathlib import Path

import numpy as np

OUT = Path("benchmarks/results/defaults_mix/text-val-s2-init/selection.json")
doc = {}
for data in ("corpus-format", "corpus-2mode"):
    rows, diffs = [], []
    for s in (0, 1, 2):
        nll = {c: json.loads(Path(f"runs/textval/{data}/s{s}-{c}/run.json").read_text())["result"]["best_metrics"]["nll"]
               for c in ("previous", "init0.1")}
        pick = min(nll, key=nll.get)
        ev = json.loads(Path(f"runs/textval/{data}/s{s}-init0.1-eval.json").read_text())
        (small, m_small), (_, m_prev) = ev["models"].items()
        ns = [str(n) for n in ev["context_sizes"]]
        acc = {"init0.1": [100 * m_small[n]["accuracy"] for n in ns], "previous": [100 * m_prev[n]["accuracy"] for n in ns]}
        diffs.append(np.subtract(acc[pick], acc["previous"]))
        rows.append({"seed": s, "validation_nll": nll, "chosen": pick, "accuracy": acc})
        print(f"{data} seed {s}: NLL 1.0 {nll['previous']:.4f}, 0.1 {nll['init0.1']:.4f} -> {pick}; "
              f"accuracy at N^C = {'/'.join(ns)}: chosen {np.round(acc[pick], 1)}, 1.0 {np.round(acc['previous'], 1)}")
    mean = np.round(np.mean(diffs, 0), 2).tolist()
    print(f"{data}: chosen minus init 1.0, mean over the seeds: {mean}")
    doc[data] = {"runs": rows, "chosen_minus_default": mean, "context_sizes": ns}
OUT.write_text(json.dumps(doc, indent=1) + "\n")
