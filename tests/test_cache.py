"""The cell cache: exact-key reuse, misses on any change, damaged entries ignored."""

from __future__ import annotations

from dataclasses import replace

from qeval.cache import CellCache, cell_key, code_identity, model_identity
from qeval.models import FakeSource
from qeval.results import CellResult
from tests.test_measure import cell

PARTS = {"model": {"spec": "fake"}, "precision": "int8", "suite_hash": "abc", "generation": {"max_new_tokens": 8}}


def test_key_is_stable_and_changes_with_every_part():
    key = cell_key(PARTS)
    assert key == cell_key(dict(PARTS))
    for name, value in [("precision", "int4"), ("suite_hash", "abd"), ("generation", {"max_new_tokens": 9})]:
        assert cell_key({**PARTS, name: value}) != key


def test_put_then_get_round_trips_the_frozen_cell(tmp_path):
    cache = CellCache(tmp_path)
    original = cell([True, False, True])
    cache.put("k", original, "run-1", "2026-01-01T00:00:00+00:00")
    hit = cache.get("k")
    assert hit.cell == original and hit.run_id == "run-1"
    assert isinstance(hit.cell, CellResult)


def test_failed_cells_are_not_cached_and_damaged_entries_are_misses(tmp_path):
    cache = CellCache(tmp_path)
    assert cache.put("f", replace(cell([True]), status="failed", reason="OOM"), "r", "t") is None
    assert cache.get("f") is None
    (tmp_path / "bad.json").write_text('{"cell": {"precision": 3')
    assert cache.get("bad") is None


def test_model_identity_ignores_what_loading_learns():
    source = FakeSource()
    before = model_identity("fake", source)
    source.card = replace(source.card, parameters=123)
    assert model_identity("fake", source) == before


def test_model_identity_sees_changed_weight_files(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"1234")
    source = FakeSource()
    source.card = replace(source.card, path=str(tmp_path))
    before = model_identity("dir", source)
    (tmp_path / "model.safetensors").write_bytes(b"12345")
    assert model_identity("dir", source) != before


def test_model_identity_ignores_the_content_hash_qeval_remembers_beside_the_weights(tmp_path):
    from qeval.engines._checkpoint import content_sha256

    (tmp_path / "model.safetensors").write_bytes(b"1234")
    source = FakeSource()
    source.card = replace(source.card, path=str(tmp_path))
    before = model_identity("dir", source)
    content_sha256(tmp_path)  # writes .qeval-content.json into the folder (a served engine hashes it)
    assert (tmp_path / ".qeval-content.json").is_file()
    assert model_identity("dir", source) == before


def test_code_identity_is_a_stable_hash():
    assert code_identity() == code_identity() and len(code_identity()) == 64
