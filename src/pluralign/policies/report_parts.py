"""The pieces of a long ``report`` step kept on disk, so a stopped report resumes (issue 16 on a
CPU: CMPO's report is ~2.5 h on one core, most of it the ICL baseline's ~1,500-token prompts,
and it used to start again from nothing when the process was stopped).

Each part is ``<run>/report-parts/<name>.json``: the value and a digest of everything it depends
on (the config digest and the selection). A part is reused only when its digest matches, and
is written atomically once computed. Values are JSON documents (they end up in the report file
anyway); what :meth:`ReportParts.get` returns has been through JSON either way, so a resumed
report is built from the same values as an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Callable, TypeVar

from ..atomic import write_text_atomic

FOLDER = "report-parts"
T = TypeVar("T")


class ReportParts:
    """``get(name, compute)``: the part from disk when it was computed under the same inputs,
    else ``compute()``, saved. ``depends_on``: anything JSON-able the parts depend on."""

    def __init__(self, run_dir: str | Path, *depends_on: Any, log: Callable[[str], Any] = print) -> None:
        self.folder = Path(run_dir) / FOLDER
        self.key = hashlib.sha1(json.dumps(depends_on, sort_keys=True, default=str).encode()).hexdigest()
        self.log = log

    def get(self, name: str, compute: Callable[[], Any]) -> Any:
        path = self.folder / f"{name}.json"
        if path.is_file():
            try:
                doc = json.loads(path.read_text())
            except json.JSONDecodeError:
                doc = {}
            if doc.get("key") == self.key:
                self.log(f"report: {name} kept from an earlier, stopped report ({path})")
                return doc["value"]
        text = json.dumps({"key": self.key, "value": compute()}, default=str)
        write_text_atomic(path, text)
        return json.loads(text)["value"]


def lazy(load: Callable[[], T], given: T | None = None) -> Callable[[], T]:
    """``given``, or what ``load()`` returns, called once and only when first asked for (the ICL
    model of a report whose ICL parts were all kept is never loaded)."""
    held: list[T | None] = [given]

    def get() -> T:
        if held[0] is None:
            held[0] = load()
        return held[0]

    return get
