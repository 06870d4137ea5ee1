from __future__ import annotations

import hashlib
import importlib
import json
import re
import sys
import tempfile
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from qeval.calibration import (
    CALIBRATION_ROOT,
    CalibrationError,
    CalibrationSet,
    available_sets,
    check_lengths,
    check_token_budget,
    load_calibration,
    resolve_calibration,
    sample_digest,
)
from qeval.errors import BackendUnavailable, QevalError

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ["arithmetic", "code", "generic", "medical"]


def generator(name: str) -> ModuleType:
    """A set's generator module (calibration/ is not an installed package: import it from the repo)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return importlib.import_module(f"calibration._generators.{name}")


def write(folder: Path, content: str | bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "calibration.jsonl"
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


def lines(*texts: str) -> str:
    return "".join(json.dumps({"text": t}) + "\n" for t in texts)


def error_of(*args, **kwargs) -> str:
    with pytest.raises(CalibrationError) as info:
        load_calibration(*args, **kwargs)
    return str(info.value)


class SpaceTokenizer:
    """HF-like: ``tok(text)["input_ids"]``, one id per space-separated word."""

    def __call__(self, text: str) -> dict[str, list[int]]:
        return {"input_ids": list(range(len(text.split())))}


class EncodeOnly:
    def encode(self, text: str) -> list[int]:
        return list(range(len(text.split())))


# --- the shipped sets ---------------------------------------------------------------------------


def test_root_lists_the_shipped_sets() -> None:
    assert CALIBRATION_ROOT == ROOT / "calibration"
    assert available_sets() == SHIPPED
    assert generator("__init__").SETS and sorted(generator("__init__").SETS) == SHIPPED


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_set_loads(name: str) -> None:
    path = ROOT / "calibration" / name / "calibration.jsonl"
    cal = load_calibration(name, samples=300, seed=1)
    assert isinstance(cal, CalibrationSet) and cal.name == name and cal.path == path
    assert cal.available >= 300 and len(cal.texts) == cal.samples == 300 and cal.seed == 1
    assert cal.content_hash == hashlib.sha256(path.read_bytes()).hexdigest()
    assert cal.sample_hash == sample_digest(cal.texts)
    assert all(1400 <= len(t) <= 2500 for t in cal.texts)
    record = cal.record()
    assert "texts" not in record and json.loads(json.dumps(record)) == record
    assert record["content_hash"] == cal.content_hash and record["available"] == cal.available
    assert (ROOT / "calibration" / name / "README.md").is_file()


@pytest.mark.parametrize("name", SHIPPED)
def test_generator_reproduces_the_file_byte_for_byte(name: str, tmp_path: Path) -> None:
    module = generator(name)
    written = module.generate(tmp_path)
    assert written.read_bytes() == (ROOT / "calibration" / name / "calibration.jsonl").read_bytes()


@pytest.mark.parametrize("name", SHIPPED)
def test_readme_quotes_the_current_statistics(name: str) -> None:
    common = generator("_common")
    texts = [json.loads(x)["text"] for x in (ROOT / "calibration" / name / "calibration.jsonl").read_text().split("\n") if x]
    assert common.stats_line(texts) in (ROOT / "calibration" / name / "README.md").read_text()


def test_code_set_is_python_that_passes_its_own_tests() -> None:
    texts = generator("code").texts()
    for text in texts:
        namespace: dict = {}
        exec(compile(text, "<calibration sample>", "exec"), namespace)  # noqa: S102 -- generated here, not untrusted
        tests = [fn for name, fn in namespace.items() if name.startswith("test_")]
        assert tests, text
        for fn in tests:
            fn()


def test_medical_set_shares_nothing_with_the_medical_suite() -> None:
    cases = [json.loads(x) for x in (ROOT / "suites" / "medical" / "cases.jsonl").read_text().splitlines() if x]
    suite_meds = {m for c in cases for m in c["expected"]["medications"]}
    corpus = (ROOT / "calibration" / "medical" / "calibration.jsonl").read_text().lower()
    assert suite_meds and not [m for m in suite_meds if m.lower() in corpus]
    assert not [c["inputs"]["note"] for c in cases if c["inputs"]["note"].lower() in corpus]


# --- sampling -----------------------------------------------------------------------------------


def test_sampling_is_deterministic_per_seed_and_keeps_file_order() -> None:
    a, b = load_calibration("generic", samples=16, seed=3), load_calibration("generic", samples=16, seed=3)
    assert a == b and a.sample_hash == b.sample_hash
    c = load_calibration("generic", samples=16, seed=4)
    assert c.texts != a.texts and c.sample_hash != a.sample_hash and c.content_hash == a.content_hash
    everything = load_calibration("generic", samples=320, seed=0).texts
    positions = [everything.index(t) for t in a.texts]
    assert positions == sorted(positions)


def test_sample_hash_changes_with_the_sample(tmp_path: Path) -> None:
    path = write(tmp_path / "tiny", lines("one", "two", "three", "four"))
    two, three = load_calibration(path, samples=2), load_calibration(path, samples=3)
    assert two.sample_hash != three.sample_hash and two.content_hash == three.content_hash
    every = load_calibration(path, samples=4, seed=9)
    assert every.texts == ("one", "two", "three", "four")  # all of them, in file order, whatever the seed
    assert sample_digest(["ab", "c"]) != sample_digest(["a", "bc"])


# --- resolving names and paths ------------------------------------------------------------------


def test_resolve_accepts_a_name_a_folder_and_a_file(tmp_path: Path) -> None:
    shipped = ROOT / "calibration" / "code" / "calibration.jsonl"
    assert resolve_calibration("code") == shipped
    assert resolve_calibration(ROOT / "calibration" / "code") == shipped
    assert resolve_calibration(shipped) == shipped
    other = tmp_path / "mine.jsonl"
    other.write_text(lines("hello there"))
    assert resolve_calibration(str(other)) == other
    cal = load_calibration(other, samples=1)
    assert cal.name == "mine" and cal.texts == ("hello there",)


def test_explicit_root(tmp_path: Path) -> None:
    write(tmp_path / "mine", lines("a b c"))
    assert available_sets(tmp_path) == ["mine"]
    assert resolve_calibration("mine", root=tmp_path) == tmp_path / "mine" / "calibration.jsonl"
    assert load_calibration("mine", samples=1, root=tmp_path).name == "mine"
    message = error_of("generic", root=tmp_path)
    assert "Unknown calibration set 'generic'" in message and "mine" in message
    assert "no sets found under" in error_of("generic", root=tmp_path / "nowhere")


def test_unknown_name_suggests_the_closest() -> None:
    message = error_of("medicl")
    assert "Unknown calibration set 'medicl'" in message and "Did you mean 'medical'?" in message
    assert all(name in message for name in SHIPPED)
    with pytest.raises(ValueError):  # CalibrationError is also a ValueError
        resolve_calibration("nothing-like-it")


def test_bad_paths(tmp_path: Path) -> None:
    (tmp_path / "empty-folder").mkdir()
    assert "has no calibration.jsonl" in error_of(tmp_path / "empty-folder")
    (tmp_path / "notes.txt").write_text("hi")
    assert "a calibration set is a .jsonl file" in error_of(tmp_path / "notes.txt")
    assert "no such file or folder" in error_of(tmp_path / "missing.jsonl")


# --- malformed files ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "where", "says"),
    [
        ("", "", "the calibration set is empty"),
        ("\n  \n\n", "", "the calibration set is empty"),
        ('{"text": "fine"}\n{"text": "oops",}\n', ":2:", "invalid JSON"),
        ('{"text": "fine"}\n\n{"txt": "typo"}\n', ":3:", "key 'text' is missing"),
        ('{"text": 42}\n', ":1:", "must be a string, got a JSON number"),
        ('{"text": "   "}\n', ":1:", "key 'text' is empty"),
        ('{"text": "a", "source": "web"}\n', ":1:", "unknown key(s) 'source'"),
        ('{"text": "a", "text": "b"}\n', ":1:", "key 'text' appears twice"),
        ('["text", "a"]\n', ":1:", "expected a JSON object"),
        ('{"text": "\\ud800"}\n', ":1:", "unpaired surrogate"),
        ('{"text": "a", "n": ' + "1" * 5000 + "}\n", ":1:", "unreadable JSON"),
        ("[" * 100_000 + "\n", ":1:", "JSON"),
    ],
)
def test_malformed_lines_name_file_and_line(tmp_path: Path, content: str, where: str, says: str) -> None:
    path = write(tmp_path / "bad", content)
    message = error_of(path, samples=1)
    assert message.startswith(f"{path}{where}") and says in message


def test_invalid_utf8_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path / "bad", b'{"text": "ok"}\n{"text": "\xff"}\n')
    message = error_of(path, samples=1)
    assert message.startswith(f"{path}:2:") and "UTF-8" in message


def test_too_many_samples_says_how_many_there_are(tmp_path: Path) -> None:
    path = write(tmp_path / "small", lines("a", "b", "c"))
    message = error_of(path, samples=4)
    assert "asked for 4" in message and "only 3 texts" in message and "at most 3" in message
    assert "only 320 texts" in error_of("code", samples=321)
    for bad in (0, -1, True, 2.5):
        assert "whole number >= 1" in error_of(path, samples=bad)


def test_unusual_but_valid_files_agree_with_datasets(tmp_path: Path) -> None:
    texts = ["line\u2028separator inside", "crlf line", "unicode: café, 数字, 🙂"]
    body = "".join(json.dumps({"text": t}, ensure_ascii=False) + "\r\n" for t in texts)
    path = write(tmp_path / "odd", b"\xef\xbb\xbf" + body.encode("utf-8"))  # BOM + CRLF
    assert load_calibration(path, samples=3).texts == tuple(texts)


def test_a_datasets_failure_becomes_a_calibration_error(tmp_path: Path) -> None:
    from qeval.calibration import _read_with_datasets

    path = write(tmp_path / "dup", '{"text": "a", "text": "b"}\n')  # parse_lines refuses this first
    with pytest.raises(CalibrationError, match=re.escape(f"{path}: the datasets library could not read")):
        _read_with_datasets(path)


def test_missing_datasets_prints_the_install_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path / "ok", lines("a"))
    monkeypatch.setitem(sys.modules, "datasets", None)  # makes `import datasets` fail
    with pytest.raises(BackendUnavailable, match=re.escape("pip install 'qeval[calibration]'")):
        load_calibration(path, samples=1)


def test_error_hierarchy() -> None:
    assert issubclass(CalibrationError, QevalError) and issubclass(CalibrationError, ValueError)


_FRAGMENTS = [b'{"text": "a"}', b'{"text": ""}', b'{"text": 1}', b"{}", b"[]", b'{"text": "\\ud800"}',
              b'{"text": "x", "n": NaN}', b'{"text": "a", "text": "b"}', b'"text"', b"null", b"\xff\xfe",
              b'{"text": "caf\xc3\xa9"}', b"\xef\xbb\xbf", b"\r", b'{"text": "a"} {"text": "b"}']


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(
    st.binary(max_size=200),
    st.lists(st.one_of(st.binary(max_size=40), st.sampled_from(_FRAGMENTS)), max_size=6).map(b"\n".join),
    st.lists(st.sampled_from([*_FRAGMENTS, b'{"text": "a"}', b"", b" "]), min_size=1, max_size=5).map(b"\n".join),
))
def test_garbage_raises_only_calibration_error(content: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = write(Path(folder) / "set", content)
        try:
            cal = load_calibration(path, samples=1)
        except CalibrationError as exc:
            event("refused")
            assert str(exc)
        else:
            event("loaded")  # valid files go through datasets too
            assert len(cal.texts) == 1 and cal.texts[0].strip()


# --- lengths ------------------------------------------------------------------------------------


def test_check_lengths_refuses_mostly_short_texts() -> None:
    texts = ["one two", "one two three", "a b c d e f g h i j", "x y z"]
    with pytest.raises(CalibrationError) as info:
        check_lengths(texts, SpaceTokenizer(), seq_len=5)
    message = str(info.value)
    assert "3 of 4 calibration texts are shorter than seq_len=5 tokens" in message
    assert "shortest: 2 tokens" in message and "seq_len <= 3" in message and "longer texts" in message
    check_lengths(texts, SpaceTokenizer(), seq_len=3)  # the suggestion works: only 1 of 4 is short
    check_lengths(texts[:2] + texts[2:3] * 2, EncodeOnly(), seq_len=10)  # exactly half short: allowed


def test_check_lengths_names_the_set_and_validates_arguments(tmp_path: Path) -> None:
    cal = load_calibration(write(tmp_path / "s", lines("a b", "c d")), samples=2)
    with pytest.raises(CalibrationError, match=re.escape(f"{cal.path}: 2 of 2")):
        check_lengths(cal, SpaceTokenizer(), seq_len=256)
    with pytest.raises(CalibrationError, match="seq_len=0"):
        check_lengths(cal, SpaceTokenizer(), seq_len=0)
    with pytest.raises(CalibrationError, match="no calibration texts"):
        check_lengths([], SpaceTokenizer(), seq_len=8)
    with pytest.raises(CalibrationError, match="cannot tokenize"):
        check_lengths(["a"], object(), seq_len=1)


def test_shipped_prose_sets_pass_the_length_check() -> None:
    # Whitespace words undercount subword tokens, so this is a floor on the real token count.
    for name in ("generic", "medical", "arithmetic"):
        check_lengths(load_calibration(name, samples=32), SpaceTokenizer(), seq_len=200)


def test_token_budget_counts_what_the_quantizer_keeps() -> None:
    texts = ["one two", "a b c d e f g h i j k l", "x " * 30]
    counts = check_token_budget(texts, SpaceTokenizer(), min_text_tokens=10, min_total_tokens=20, why="test")
    assert counts == {"texts_used": 2, "texts_dropped_short": 1, "tokens": 12 + 30}


def test_token_budget_refuses_all_short_texts() -> None:
    with pytest.raises(CalibrationError, match="all 2 calibration texts are shorter than 10 tokens"):
        check_token_budget(["a b", "c"], SpaceTokenizer(), min_text_tokens=10, min_total_tokens=1, why="test")


@given(st.lists(st.integers(10, 60), min_size=1, max_size=12), st.integers(1, 2000))
def test_token_budget_refusal_suggests_enough_samples(lengths, need) -> None:
    texts = [" ".join(["w"] * n) for n in lengths]
    if sum(lengths) >= need:
        check_token_budget(texts, SpaceTokenizer(), min_text_tokens=10, min_total_tokens=need, why="t")
        return
    with pytest.raises(CalibrationError) as info:
        check_token_budget(texts, SpaceTokenizer(), min_text_tokens=10, min_total_tokens=need, why="Hessian rank")
    message = str(info.value)
    assert f"give {sum(lengths)} tokens" in message and "Hessian rank" in message
    suggested = int(re.search(r"Ask for about (\d+) samples", message).group(1))
    # texts as long as these on average, that many of them, reach the bound
    assert suggested * sum(lengths) / len(lengths) >= need
