"""Copy the small records of the NP-DPO and CMPO multi-seed protocol runs into the repository.

A development machine's ``runs/`` folder does not survive from one session to the next, and one
protocol seed takes longer on a 2-core CPU than a session lasts. The runs resume from these
records (docs/np-dpo.md and docs/cmpo.md, "Selection discipline and seeds"): candidates' validation
scores (NP-DPO), ``selection.json``, the chosen few-shot encoder (CMPO), finished report parts
and finished reports. Checkpoints of the language-model stages are left out (tens of MB each); select and
report train a missing one again from its config and seed.

    python scripts/keep_protocol_records.py            # runs/ -> benchmarks/results/
    python scripts/keep_protocol_records.py --restore  # benchmarks/results/ -> runs/ (before `seeds`)
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

# NP-DPO's evaluation part writes results.json/.csv before the ICL parts: only the final one is a record
from pluralign.policies.np_dpo.multiseed import report_finished

#: (run folder, records folder, the files kept per seed, as globs relative to seed-<s>/)
PROTOCOLS = [
    ("runs/np-dpo-protocol", "benchmarks/results/np_dpo_protocol",
     # with selection.json kept, select is skipped; report trains the chosen candidate and the
     # baselines again only if its evaluation part is missing (protocol.train_missing)
     ["select/candidate-*/validation.json", "selection.json", "report-parts/*.json", "results.json",
      "results.csv"]),
    ("runs/cmpo-protocol", "benchmarks/results/cmpo_protocol",
     ["selection.json", "fewshot/model/*", "report-parts/*.json", "report.json"]),
]
MAX_BYTES = 2_000_000  # a record, never a checkpoint


def copy_records(src_root: Path, dst_root: Path, patterns: list[str]) -> list[Path]:
    """Copy every file matching ``patterns`` under each ``src_root/seed-*`` to ``dst_root``."""
    copied = []
    for seed in sorted(src_root.glob("seed-*")):
        for pattern in patterns:
            for f in sorted(seed.glob(pattern)):
                if not f.is_file() or (f.name in ("results.json", "results.csv") and not report_finished(seed)):
                    continue
                if f.stat().st_size > MAX_BYTES:
                    raise SystemExit(f"{f}: {f.stat().st_size} bytes is not a small record; refusing to copy")
                target = dst_root / f.relative_to(src_root)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(f, target)
                copied.append(target)
    return copied


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--restore", action="store_true", help="copy the records back into runs/")
    a = ap.parse_args()
    for runs, records, patterns in PROTOCOLS:
        src, dst = (Path(records), Path(runs)) if a.restore else (Path(runs), Path(records))
        copied = copy_records(src, dst, patterns)
        print(f"{src} -> {dst}: {len(copied)} files")
        for f in copied:
            print(f"  {f}")


if __name__ == "__main__":
    main()
