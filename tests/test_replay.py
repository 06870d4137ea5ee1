"""``replay:PATH``: recorded completions re-scored through the sweep, without a model."""

import hashlib
import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from qeval.cli import app
from qeval.config import SweepConfig
from qeval.generation import GenerationSettings
from qeval.errors import ModelError, QevalError
from qeval.models import FakeSource, ReplaySource, conversation, resolve_model
from qeval.report import SAMPLES_FILE
from qeval.report._samples import SAMPLE_KEYS
from qeval.sweep import run_sweep
from tests.fakes import MINI, right_except_int4_on_odd

runner = CliRunner()
SETTINGS = GenerationSettings()


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> Path:
    """A fake fp32 + int4 run on the mini suite; int4 gets the odd first operands wrong."""
    out = tmp_path_factory.mktemp("recorded")
    config = SweepConfig(model="fake", precisions=("fp32", "int4"), suites=(str(MINI),), device="cpu",
                         latency_samples=0, out_dir=str(out))
    _, path = run_sweep(config, source=FakeSource(responder=right_except_int4_on_odd))
    return path


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _by_case(rows, precision):
    return {r["case_id"]: r for r in rows if r["precision"] == precision}


def _write_rows(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _replay(model: str, out: Path, *extra: str, precisions: str = "as-is"):
    result = runner.invoke(app, ["sweep", "--model", model, "--precisions", precisions, "--suites", str(MINI),
                                 "--device", "cpu", "--latency-samples", "0", "--out", str(out), *extra])
    output = result.output + (result.stderr if result.stderr_bytes is not None else "")
    runs = sorted(out.iterdir()) if out.exists() else []
    return result.exit_code, output, (runs[-1] if runs else None)


def _cells(run: Path) -> dict:
    return {c["precision"]: c for c in json.loads((run / "results.json").read_text())["cells"]}


# --- end to end through the CLI ------------------------------------------------------------


def test_replay_rescores_to_the_same_results(recorded, tmp_path):
    code, out, run = _replay(f"replay:{recorded}#int4", tmp_path)
    assert code == 0, out
    old = _by_case(_rows(recorded / SAMPLES_FILE), "int4")
    new = _by_case(_rows(run / SAMPLES_FILE), "as-is")
    assert new.keys() == old.keys() and len(new) == 12
    for case_id, row in new.items():
        for key in ("prompt", "completion", "passed", "score", "output_tokens", "expected"):
            assert row[key] == old[case_id][key], (case_id, key)
    assert sum(not r["passed"] for r in new.values()) == 6
    data = json.loads((run / "results.json").read_text())
    digest = hashlib.sha256((recorded / SAMPLES_FILE).read_bytes()).hexdigest()
    (cell,) = data["cells"]
    assert cell["status"] == "ok" and cell["accuracy"] == pytest.approx(0.5)
    assert cell["precision_config"]["replay"]["recorded_precision"] == "int4"
    assert cell["precision_config"]["replay"]["sha256"] == digest
    assert cell["memory"]["weights_bytes"] is None and cell["latency"] is None
    card = data["model"]
    assert card["spec"] == f"replay:{recorded}#int4" and card["name"] == "replay of fake"
    assert digest in card["notes"] and "not measured" in card["notes"]


def test_recorded_precisions_named_in_the_sweep_replay_each(recorded, tmp_path):
    code, out, run = _replay(f"replay:{recorded / SAMPLES_FILE}", tmp_path, precisions="fp32,int4")
    assert code == 0, out
    cells = _cells(run)
    assert cells["fp32"]["accuracy"] == 1.0 and cells["int4"]["accuracy"] == pytest.approx(0.5)
    new, old = _rows(run / SAMPLES_FILE), _rows(recorded / SAMPLES_FILE)
    key = lambda r: (r["precision"], r["case_id"], r["completion"], r["passed"])
    assert sorted(map(key, new)) == sorted(map(key, old))


def test_an_edited_completion_changes_exactly_that_case(recorded, tmp_path):
    rows = _rows(recorded / SAMPLES_FILE)
    for r in rows:
        if r["precision"] == "int4" and r["case_id"] == "mini-02":  # 3 + 4, recorded wrong as 8
            assert not r["passed"]
            r["completion"] = "The answer is 7."
    edited = _write_rows(tmp_path / "edited.jsonl", rows)
    code, out, run = _replay(f"replay:{edited}#int4", tmp_path / "out")
    assert code == 0, out
    old, new = _by_case(rows, "int4"), _by_case(_rows(run / SAMPLES_FILE), "as-is")
    changed = {c for c in new if new[c]["passed"] != old[c]["passed"]}
    assert changed == {"mini-02"} and new["mini-02"]["passed"]
    assert _cells(run)["as-is"]["accuracy"] == pytest.approx(7 / 12)


def test_missing_cases_fail_the_cell_and_are_listed(recorded, tmp_path):
    rows = [r for r in _rows(recorded / SAMPLES_FILE)
            if not (r["precision"] == "int4" and r["case_id"] in ("mini-03", "mini-05"))]
    partial = _write_rows(tmp_path / "partial.jsonl", rows)
    code, out, run = _replay(f"replay:{partial}#int4", tmp_path / "out")
    assert code == 0 and "1 cell(s) failed" in out, out
    cell = _cells(run)["as-is"]
    assert cell["status"] == "failed"
    reason = cell["reason"]
    # the accuracy pass hands replay the case ids before generating: they are listed by id
    assert "2 of 12 case(s) of suite 'mini' have no recorded completion" in reason
    assert reason.endswith("Missing ids: mini-03, mini-05.")


def test_a_single_precision_file_replays_as_is(recorded, tmp_path):
    rows = [r for r in _rows(recorded / SAMPLES_FILE) if r["precision"] == "int4"]
    only = _write_rows(tmp_path / "int4.jsonl", rows)
    code, out, run = _replay(f"replay:{only}", tmp_path / "out")
    assert code == 0, out
    cell = _cells(run)["as-is"]
    assert cell["status"] == "ok" and cell["precision_config"]["replay"]["recorded_precision"] == "int4"
    assert cell["accuracy"] == pytest.approx(0.5)


def test_several_recorded_precisions_need_a_choice(recorded, tmp_path):
    code, out, run = _replay(f"replay:{recorded}", tmp_path)
    assert code == 0, out
    cell = _cells(run)["as-is"]
    assert cell["status"] == "failed"
    assert "fp32, int4" in cell["reason"] and "#PRECISION" in cell["reason"]


def test_a_label_other_than_as_is_or_the_selected_precision_is_refused(recorded, tmp_path):
    code, out, run = _replay(f"replay:{recorded}#int4", tmp_path, precisions="fp32")
    assert code == 0, out
    cell = _cells(run)["fp32"]
    assert cell["status"] == "failed" and "--precisions as-is" in cell["reason"]


def test_an_unknown_selected_precision_is_a_usage_error(recorded, tmp_path):
    code, out, _ = _replay(f"replay:{recorded}#int8", tmp_path)
    assert code == 2 and "Traceback" not in out
    assert "'int8'" in out and "fp32, int4" in out


def test_replay_without_latency_samples_0_notes_latency_not_measured(recorded, tmp_path):
    code, out, run = _replay(f"replay:{recorded}#fp32", tmp_path, "--latency-samples", "2")
    assert code == 0, out
    cell = _cells(run)["as-is"]
    assert cell["status"] == "ok" and cell["accuracy"] == 1.0
    assert cell["latency"] is None and "latency not measured" in cell["reason"]


# --- bad files -------------------------------------------------------------------------------


def _row(**kw):
    base = {"precision": "int4", "suite": "mini", "case_id": "mini-00", "prompt": "p", "completion": "c",
            "expected": 1, "score": 0.0, "passed": False, "reason": None, "output_tokens": 1, "tags": {},
            "details": {}}
    base.update(kw)
    assert tuple(base) == SAMPLE_KEYS
    return base


def _error(spec: str) -> str:
    with pytest.raises(ModelError) as info:
        resolve_model(spec)
    return str(info.value)


def test_missing_file_and_folder(tmp_path):
    assert "not found" in _error(f"replay:{tmp_path / 'nope.jsonl'}")
    assert f"has no {SAMPLES_FILE}" in _error(f"replay:{tmp_path}")
    assert "needs a path" in _error("replay:")


def test_missing_file_through_the_cli(tmp_path):
    code, out, _ = _replay(f"replay:{tmp_path / 'nope'}", tmp_path / "out")
    assert code == 2 and "Traceback" not in out and "Replay file not found" in out


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (json.dumps(_row()) + "\n{not json\n", "bad.jsonl:2: not valid JSON"),
        ("[1, 2]\n", "bad.jsonl:1: expected a JSON object"),
        (json.dumps({k: v for k, v in _row().items() if k != "completion"}),
         "bad.jsonl:1: key 'completion' is missing"),
        (json.dumps(_row(prompt=3)), "bad.jsonl:1: 'prompt' must be a string"),
        (json.dumps(_row(output_tokens=True)), "bad.jsonl:1: 'output_tokens' must be a whole number"),
        (json.dumps(_row()) + "\n\n" + json.dumps(_row()),
         "bad.jsonl:3: case mini/mini-00 at precision 'int4' appears again (first on line 1)"),
        ("\n  \n", "holds no recorded completions"),
        (b"\xff\xfe{}\n", "bad.jsonl:1: not UTF-8"),
    ],
)
def test_bad_lines_name_file_and_line(tmp_path, content, expected):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    assert expected in _error(f"replay:{path}")


_scratch = Path(tempfile.mkdtemp(prefix="qeval-replay-fuzz-"))
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8,
)
_lines = st.one_of(
    st.binary(max_size=40),
    st.text(max_size=40).map(str.encode),
    # objects with any subset of the keys, any values
    st.fixed_dictionaries({}, optional=dict.fromkeys(SAMPLE_KEYS, _json_values)).map(lambda d: json.dumps(d).encode()),
    # well-formed rows, some duplicated or with bad token counts
    st.builds(_row, case_id=st.text(max_size=3), output_tokens=st.integers(-2, 5))
    .map(lambda r: json.dumps(r).encode()),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_lines, max_size=6))
def test_any_file_content_is_read_or_refused_with_a_qeval_error(lines):
    path = _scratch / "fuzz.jsonl"
    path.write_bytes(b"\n".join(lines))
    try:
        source = ReplaySource(f"replay:{path}")
    except QevalError as exc:
        assert str(path) in str(exc)
    else:
        assert source.recording.rows


# --- finding completions from user text ---------------------------------------------------------


def _source(tmp_path, rows) -> ReplaySource:
    return ReplaySource(f"replay:{_write_rows(tmp_path / 'samples.jsonl', rows)}")


def _chat(text, system=None):  # the fake model's chat format
    head = f"[system] {system}\n" if system else ""
    return f"{head}[user] {text}\n[assistant]"


def _model(source, precision="as-is"):
    return source.load(precision, "cpu").model


def test_the_shortest_template_fit_wins_over_a_case_that_contains_the_text(tmp_path):
    rows = [_row(case_id="a", prompt=_chat("What is 1 + 2? Then add 3."), completion="6"),
            _row(case_id="b", prompt=_chat("What is 1 + 2?"), completion="3"),
            _row(case_id="c", prompt=_chat("Name a colour."), completion="red")]
    model = _model(_source(tmp_path, rows))
    prompts = [model.prepare(conversation(t), chat=True)
               for t in ("What is 1 + 2?", "What is 1 + 2? Then add 3.", "Name a colour.")]
    assert [p.text for p in prompts] == [_chat("What is 1 + 2?"), _chat("What is 1 + 2? Then add 3."), _chat("Name a colour.")]
    assert [g.text for g in model.generate(prompts, SETTINGS)] == ["3", "6", "red"]


def test_a_case_that_merely_contains_a_missing_text_is_not_taken(tmp_path):
    rows = [_row(case_id="a", prompt=_chat("What is 1 + 2? Then add 3."), completion="6"),
            _row(case_id="c", prompt=_chat("Name a colour."), completion="red")]
    model = _model(_source(tmp_path, rows))
    prompt = model.prepare(conversation("What is 1 + 2?"), chat=True)
    with pytest.raises(ModelError, match=r"1 case\(s\) have no recorded completion.*: 'What is 1 \+ 2\?'"):
        model.generate([prompt], SETTINGS)


def test_every_unresolved_case_of_the_pass_is_listed_once(tmp_path):
    model = _model(_source(tmp_path, [_row(prompt=_chat("known"))]))
    prompts = [model.prepare(conversation(f"unknown {i}"), chat=True) for i in range(25)]
    with pytest.raises(ModelError) as info:
        model.generate(prompts[:1], SETTINGS)
    message = str(info.value)
    assert "25 case(s)" in message and "'unknown 19'" in message and "(5 more)" in message
    assert "'unknown 20'" not in message
    # reported once: the next pass starts clean
    ok = model.prepare(conversation("known"), chat=True)
    assert model.generate([ok], SETTINGS)[0].text == "c"


def test_the_system_prompt_tells_suites_apart(tmp_path):
    rows = [_row(suite="terse", prompt=_chat("Hi?", "Be terse."), completion="Hi."),
            _row(suite="loud", prompt=_chat("Hi?", "Be loud!!"), completion="HELLO!")]
    model = _model(_source(tmp_path, rows))
    loud = model.prepare(conversation("Hi?", "Be loud!!"), chat=True)
    assert model.generate([loud], SETTINGS)[0].text == "HELLO!"
    either = model.prepare(conversation("Hi?"), chat=True)
    with pytest.raises(ModelError, match="fit recorded cases with different completions.*loud/mini-00"):
        model.generate([either], SETTINGS)


def test_one_prompt_with_different_completions_is_ambiguous(tmp_path):
    rows = [_row(suite="a", case_id="x-1", prompt=_chat("Q"), completion="1"),
            _row(suite="b", case_id="x-1", prompt=_chat("Q"), completion="2")]
    model = _model(_source(tmp_path, rows))
    prompt = model.prepare(conversation("Q"), chat=True)
    with pytest.raises(ModelError, match=r"a/x-1, b/x-1"):
        model.generate([prompt], SETTINGS)


def test_the_same_completion_under_one_prompt_in_two_suites_is_fine(tmp_path):
    rows = [_row(suite="a", prompt=_chat("Q"), completion="1"), _row(suite="b", prompt=_chat("Q"), completion="1")]
    model = _model(_source(tmp_path, rows))
    prompt = model.prepare(conversation("Q"), chat=True)
    assert model.generate([prompt], SETTINGS)[0].text == "1"


def test_a_template_that_trims_the_message_still_fits(tmp_path):
    model = _model(_source(tmp_path, [_row(prompt=_chat("Hello"), completion="Hi")]))
    prompt = model.prepare(conversation("  Hello\n"), chat=True)
    assert model.generate([prompt], SETTINGS)[0].text == "Hi"


def test_replay_measures_nothing(tmp_path):
    source = _source(tmp_path, [_row()])
    loaded = source.load("as-is", "cpu")
    assert loaded.model.weights_bytes() is None and loaded.load_s == 0.0
    with pytest.raises(ModelError, match="latency not measured"):
        loaded.model.generate_timed(loaded.model.prepare(conversation("p"), chat=False), SETTINGS)
    loaded.model.close()
    assert source.card.parameters is None and source.card.name == "replay"
    assert source.recording.sha256 in source.card.notes


def test_a_hash_in_an_existing_path_is_part_of_the_path(tmp_path):
    folder = tmp_path / "run#1"
    folder.mkdir()
    _write_rows(folder / SAMPLES_FILE, [_row()])
    assert ReplaySource(f"replay:{folder}").selector is None
    assert ReplaySource(f"replay:{folder}#int4").selector == "int4"
