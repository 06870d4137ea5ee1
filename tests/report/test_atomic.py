import json

import pytest

from qeval.errors import ReportError
from qeval.report import _json, atomic_write_bytes, atomic_write_text, read_results, write_report
from qeval.results import RunSettings


def _leftovers(folder):
    return [p.name for p in folder.iterdir() if p.name.startswith(".qeval-tmp-")]


def test_atomic_write_text_and_bytes(tmp_path):
    atomic_write_text(tmp_path / "a.txt", "héllo")
    atomic_write_bytes(tmp_path / "sub" / "b.bin", b"\x00\x01")
    assert (tmp_path / "a.txt").read_text(encoding="utf-8") == "héllo"
    assert (tmp_path / "sub" / "b.bin").read_bytes() == b"\x00\x01"
    assert _leftovers(tmp_path) == []


def test_crash_mid_serialisation_keeps_old_results(record, factory, tmp_path, monkeypatch):
    folder = write_report(record, tmp_path)
    before = (folder / "results.json").read_bytes()

    def half_then_crash(obj, handle, **kwargs):
        handle.write('{"schema_version": 2, "run_id": "trunc')  # half a file reaches the temp file
        raise RuntimeError("serialiser died mid-way")

    monkeypatch.setattr(_json.json, "dump", half_then_crash)
    changed = factory.make_record(settings=RunSettings(limit=999))
    with pytest.raises(RuntimeError, match="mid-way"):
        write_report(changed, tmp_path)
    assert (folder / "results.json").read_bytes() == before
    assert read_results(folder)["settings"]["limit"] == 4
    assert _leftovers(folder) == []


def test_unwritable_folder_raises_report_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ReportError, match="cannot write"):
        atomic_write_text(blocker / "inside.txt", "y")


def test_rewrite_replaces_content(record, factory, tmp_path):
    write_report(record, tmp_path)
    folder = write_report(factory.make_record(settings=RunSettings(limit=7)), tmp_path)
    assert json.loads((folder / "results.json").read_text())["settings"]["limit"] == 7
    assert _leftovers(folder) == []


def test_written_files_get_the_mode_open_would_give_them(tmp_path):
    import os
    import stat

    from qeval.files import atomic_write_text

    old = os.umask(0o022)
    try:
        path = atomic_write_text(tmp_path / "a.md", "x")
        assert stat.S_IMODE(path.stat().st_mode) == 0o644  # not mkstemp's 0600
        os.umask(0o077)
        path = atomic_write_text(tmp_path / "b.md", "x")
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    finally:
        os.umask(old)
