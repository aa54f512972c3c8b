import os
import stat

import pytest

from pluralign.atomic import write_text_atomic


def test_write_text_atomic_replaces_whole_files_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "new" / "doc.json"
    assert write_text_atomic(path, "first ü\n") == path  # the folder is created
    assert path.read_text(encoding="utf-8") == "first ü\n"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask  # not mkstemp's 0600
    write_text_atomic(path, "second")
    assert path.read_text() == "second"
    with pytest.raises(TypeError):  # a write that fails half-way keeps the old file whole
        write_text_atomic(path, 42)  # type: ignore[arg-type]
    assert path.read_text() == "second"
    assert sorted(p.name for p in path.parent.iterdir()) == ["doc.json"]
