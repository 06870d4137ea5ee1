"""HumanEval- and MBPP-format JSONL as suites: loading, strict errors with file:line, scoring, a sweep."""

from __future__ import annotations

import gzip
import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qeval.errors import SuiteError
from qeval.scorers import get_scorer
from qeval.suite_formats import HUMANEVAL_STOP, MBPP_STOP, detect_format
from qeval.suites import Suite, default_suite_yaml, load_suite

DATA = Path(__file__).parent / "data" / "formats"
HUMANEVAL, HUMANEVAL_WRONG = DATA / "humaneval.jsonl", DATA / "humaneval_wrong.jsonl"
MBPP, MBPP_WRONG = DATA / "mbpp.jsonl", DATA / "mbpp_wrong.jsonl"


def lines_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write_lines(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def error_of(path: Path) -> str:
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    return str(info.value)


HE_LINE = lines_of(HUMANEVAL)[0]
MBPP_LINE = lines_of(MBPP)[0]


# --- loading --------------------------------------------------------------------------------


def test_humaneval_file_is_a_suite_as_it_is() -> None:
    suite = load_suite(HUMANEVAL)
    raw = lines_of(HUMANEVAL)
    assert suite.name == "humaneval" and suite.path == HUMANEVAL and suite.cases_format == "humaneval"
    assert [c.id for c in suite.cases] == [f"Sample/{i}" for i in range(6)]
    assert not suite.chat_template and suite.scorer_name == "code_exec" and suite.primary_metric == "accuracy"
    assert suite.generation.stop == HUMANEVAL_STOP and suite.generation.max_new_tokens == 512
    assert len(suite.content_hash) == 64
    for case, line in zip(suite.cases, raw, strict=True):
        entry = line["entry_point"]
        assert dict(case.expected) == {
            "entry_point": entry, "prefix": line["prompt"], "setup": line["test"],
            "tests": f"check({entry})", "reference": line["canonical_solution"],
        }
        assert suite.render(case) == line["prompt"].strip()  # trailing newline trimmed, as bigcode does
    assert detect_format(HE_LINE) == "humaneval" and detect_format(MBPP_LINE) == "mbpp"


def test_mbpp_file_is_a_suite_as_it_is() -> None:
    suite = load_suite(MBPP)
    assert suite.name == "mbpp" and suite.cases_format == "mbpp" and not suite.chat_template
    assert suite.generation.stop == MBPP_STOP
    by_id = {c.id: c for c in suite.cases}
    assert list(by_id) == [str(i) for i in range(1001, 1008)]  # int task_id -> string id
    assert {i: c.expected["entry_point"] for i, c in by_id.items()} == {
        "1001": "count_capitalized", "1002": "digit_product", "1003": "first_repeat_index",
        "1004": "nearest_to_origin", "1005": "is_descending",
        "1006": "ring_area",  # code also defines circle_area; the test calls math.isclose(ring_area(...))
        "1007": "common_letters",  # the test wraps it in sorted(...)
    }
    line = lines_of(MBPP)[4]
    assert by_id["1005"].expected["tests"] == "\n".join(line["test_list"] + line["challenge_test_list"])
    assert by_id["1004"].expected["setup"] == "POINTS = [(3, 4), (1, 1), (-2, 0)]"
    assert "setup" not in by_id["1001"].expected
    assert by_id["1002"].expected["reference"] == lines_of(MBPP)[1]["code"]
    prompt = suite.render(by_id["1001"])
    assert prompt == f'"""\n{MBPP_LINE["text"]}\n{MBPP_LINE["test_list"][0]}\n"""\n'


def test_mbpp_sanitized_variant_and_explicit_entry_point(tmp_path: Path) -> None:
    sanitized = {"source_file": "x.py", "task_id": 7, "prompt": "Write a function to add one.",
                 "code": "import math\ndef add_one(x):\n    return x + 1", "test_imports": ["import math"],
                 "test_list": ["assert math.floor(add_one(1.5)) == 2"]}
    suite = load_suite(write_lines(tmp_path / "sanitized.jsonl", [sanitized, {**sanitized, "task_id": 8,
                                                                              "entry_point": "add_two"}]))
    first, second = suite.cases
    assert first.inputs["text"] == "Write a function to add one." and first.expected["setup"] == "import math"
    assert first.expected["entry_point"] == "add_one" and second.expected["entry_point"] == "add_two"


def test_gzipped_file_and_bom(tmp_path: Path) -> None:
    gz = tmp_path / "HumanEval.jsonl.gz"
    gz.write_bytes(gzip.compress(HUMANEVAL.read_bytes()))
    suite = load_suite(gz)
    assert suite.name == "HumanEval" and suite.cases == load_suite(HUMANEVAL).cases
    bom = tmp_path / "bom.jsonl"
    bom.write_bytes(b"\xef\xbb\xbf" + MBPP.read_bytes())
    assert len(load_suite(bom).cases) == 7


def test_default_suite_yaml_is_the_suite_the_file_runs_as(tmp_path: Path) -> None:
    """Copying the printed suite.yaml next to the file gives the same suite, hash included."""
    text = default_suite_yaml(MBPP)
    assert "cases_format: mbpp" in text and "cases_file: mbpp.jsonl" in text
    (tmp_path / "suite.yaml").write_text(text)
    (tmp_path / "mbpp.jsonl").write_bytes(MBPP.read_bytes())
    folder, bare = load_suite(tmp_path), load_suite(MBPP)
    assert folder.content_hash == bare.content_hash and folder.cases == bare.cases
    assert folder.generation == bare.generation and folder.prompt_template == bare.prompt_template


def test_folder_suite_names_a_foreign_file_and_overrides_defaults(tmp_path: Path) -> None:
    (tmp_path / "suite.yaml").write_text(
        "name: he-chat\n"
        f"cases_file: {HUMANEVAL}\n"  # absolute paths work; relative ones are relative to the folder
        "chat_template: true\n"
        "prompt_template: \"Complete `{{ entry_point }}`:\\n```python\\n{{ prompt }}```\"\n"
        "generation: {max_new_tokens: 300}\n"
    )
    suite = load_suite(tmp_path)
    assert suite.cases_format == "humaneval" and suite.chat_template and suite.name == "he-chat"
    assert suite.generation.max_new_tokens == 300 and suite.generation.stop == HUMANEVAL_STOP  # merged key by key
    assert suite.render(suite.cases[0]).startswith("Complete `count_vowels`:\n```python\ndef count_vowels")


def test_native_folders_are_unchanged(tmp_path: Path) -> None:
    code = load_suite(Path(__file__).parents[1] / "suites" / "code")
    assert code.cases_format == "native" and len(code.cases) == 66


@pytest.mark.parametrize(
    "yaml_text, fragments",
    [
        ("name: x\ncases_file: nope.jsonl\n", ["suite.yaml:2", "'cases_file'", "nope.jsonl", "not found"]),
        ("name: x\ncases_file: data.jsonl\ncases_format: humaneval2\n",
         ["suite.yaml:3", "'cases_format'", "humaneval2", "auto, native, humaneval, mbpp"]),
        ("name: x\ncases_file: data.jsonl\ncases_format: native\nprompt_template: hi\nscorer: {name: code_exec}\n",
         ["data.jsonl:1", "'id' is missing", "looks like humaneval", "cases_format: humaneval"]),
        ("name: x\ncases_file: data.jsonl\nprompt_template: '{{ question }}'\n",
         ["data.jsonl:1", "'question'", "humaneval format", "prompt, entry_point"]),
        ("name: x\ncases_file: data.jsonl\ntemprature: 0\n", ["suite.yaml:3", "temprature", "cases_format"]),
    ],
    ids=["missing-cases-file", "bad-format", "declared-native", "template-variable", "unknown-key"],
)
def test_folder_errors_name_file_line_and_key(tmp_path: Path, yaml_text: str, fragments: list[str]) -> None:
    (tmp_path / "suite.yaml").write_text(yaml_text)
    (tmp_path / "data.jsonl").write_bytes(HUMANEVAL.read_bytes())
    msg = error_of(tmp_path)
    for fragment in fragments:
        assert fragment in msg, (fragment, msg)


def _without(line: dict, key: str) -> dict:
    return {k: v for k, v in line.items() if k != key}


@pytest.mark.parametrize(
    "rows, fragments",
    [
        ([HE_LINE, _without(HE_LINE, "test")], [":2:", "'test' is missing", "canonical_solution"]),
        ([HE_LINE, {**HE_LINE, "task_id": "B", "entry_point": 5}], [":2:", "'entry_point'", "valid string"]),
        ([HE_LINE, {**HE_LINE, "task_id": True}], [":2:", "'task_id'"]),
        ([HE_LINE, '{"task_id": "B", "prompt": '], [":2:", "invalid JSON"]),
        ([HE_LINE, "[1, 2]"], [":2:", "expected a JSON object", "task_id, prompt"]),
        (["", {"question": "x"}], [":2:", "cannot tell the format", "question", "test_list"]),
        ([{**HE_LINE, "test": "assert True"}], [":1:", "'test'", "check(candidate)"]),
        ([{**HE_LINE, "test": "def check(candidate:\n    pass"}], [":1:", "'test'", "not valid Python"]),
        ([{**HE_LINE, "entry_point": "count-vowels"}], [":1:", "'entry_point'", "not a Python function name"]),
        ([{**HE_LINE, "entry_point": "check"}], [":1:", "'check'"]),
        ([HE_LINE, HE_LINE], [":2:", "'task_id'", "duplicate", "line 1"]),
        ([MBPP_LINE, {**MBPP_LINE, "task_id": 2, "test_list": []}], [":2:", "'test_list'", "at least 1"]),
        ([{**MBPP_LINE, "test_list": ["assert True", "assert f(1 =="]}], [":1:", "'test_list[1]'", "not valid Python"]),
        ([{**MBPP_LINE, "test_list": ["assert len('ab') == 2"], "code": "x = 1"}], [":1:", "entry_point"]),
        ([_without(MBPP_LINE, "text")], [":1:", "'text' is missing", "'prompt'"]),
        ([{**MBPP_LINE, "test_list": "assert x"}], [":1:", "'test_list'", "valid list"]),
        ([{**MBPP_LINE, "test_setup_code": "import (("}], [":1:", "'test_setup_code'"]),
        ([{"id": "a", "inputs": {}, "expected": 1}], [":1:", "qeval's own case format", "suite.yaml"]),
        ([""], ["no cases"]),
    ],
    ids=["he-missing-key", "he-wrong-type", "he-bool-id", "not-json", "not-an-object", "unknown-format",
         "he-no-check", "he-test-syntax", "he-bad-entry", "he-entry-check", "he-duplicate-id", "mbpp-empty-tests",
         "mbpp-test-syntax", "mbpp-no-entry", "mbpp-no-text", "mbpp-tests-not-list", "mbpp-setup-syntax",
         "native-without-yaml", "empty"],
)
def test_bad_files_raise_suite_error_with_file_and_line(tmp_path: Path, rows: list, fragments: list[str]) -> None:
    path = write_lines(tmp_path / "bad.jsonl", rows)
    msg = error_of(path)
    assert msg.startswith(str(path)), msg
    for fragment in fragments:
        assert fragment in msg, (fragment, msg)


def test_not_a_suite_file(tmp_path: Path) -> None:
    other = tmp_path / "HumanEval.json"
    other.write_bytes(HUMANEVAL.read_bytes())
    assert "not a suite" in error_of(other) and ".jsonl" in error_of(other)
    bad_gz = tmp_path / "x.jsonl.gz"
    bad_gz.write_bytes(b"not gzip")
    assert "gzip" in error_of(bad_gz)
    assert "suite not found" in error_of(tmp_path / "missing.jsonl")
    assert "pass the folder" in error_of(Path(__file__).parents[1] / "suites" / "code" / "cases.jsonl")


# --- any JSON: a SuiteError or a valid suite, nothing else -------------------------------------

_CODEISH = st.sampled_from([
    "", "f", "check", "count_vowels", "def f(x):\n    return x\n", "    return 1\n", "assert f(1) == 1",
    "def check(candidate):\n    assert candidate(1) == 1\n", "assert (", "x = \0", "import math", "1 +", "Sample/9",
])
_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
              st.text(max_size=12), _CODEISH),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=6,
)
_KEYS = st.sampled_from(["task_id", "prompt", "canonical_solution", "test", "entry_point", "text", "code", "test_list",
                         "test_setup_code", "challenge_test_list", "test_imports", "id", "inputs", "expected", "tags"])
_ANY_OBJECT = st.dictionaries(st.one_of(_KEYS, st.text(max_size=6)), _VALUES, max_size=8)


@st.composite
def _mutated(draw) -> dict:
    """A valid line with some keys dropped and some values replaced: near misses reach the deep checks."""
    base = dict(draw(st.sampled_from(lines_of(HUMANEVAL) + lines_of(MBPP))))
    for key in draw(st.lists(st.sampled_from(sorted(base)), max_size=2)):
        base.pop(key, None)
    base.update(draw(st.dictionaries(_KEYS, st.one_of(_VALUES, st.lists(_CODEISH, max_size=3)), max_size=2)))
    return base


_LINE = st.one_of(_ANY_OBJECT, _mutated(), _mutated(), st.sampled_from(["[]", "3", "null", "{", ""]))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(_LINE, max_size=4), as_folder=st.booleans())
def test_any_json_lines_give_a_suite_error_or_a_valid_suite(rows: list, as_folder: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cases = write_lines(Path(tmp) / "cases.jsonl", rows)
        if as_folder:  # auto-detected: foreign formats fill in the rest of suite.yaml
            (Path(tmp) / "suite.yaml").write_text("name: fuzz\n")
        try:
            suite = load_suite(Path(tmp) if as_folder else cases)
        except SuiteError:
            return
    assert isinstance(suite, Suite) and suite.cases and suite.cases_format in ("humaneval", "mbpp")
    assert len({c.id for c in suite.cases}) == len(suite.cases)
    for case in suite.cases:
        assert case.expected["entry_point"].isidentifier() and compile(case.expected["tests"], "t", "exec")
        assert isinstance(suite.render(case), str)


# --- scoring: references pass, deliberately wrong solutions fail ------------------------------


@pytest.fixture(scope="module")
def scorer():
    return get_scorer("code_exec", {"timeout_s": 10})


def _cases(path: Path):
    return load_suite(path).cases


@pytest.mark.parametrize("case", _cases(HUMANEVAL), ids=lambda c: c.id)
def test_humaneval_canonical_solution_passes_as_continuation_and_as_full_function(scorer, case) -> None:
    exp = case.expected
    assert scorer.score(exp["reference"], exp).passed  # the canonical body continues the prompt
    full = f"Here it is:\n```python\n{exp['prefix']}{exp['reference']}```\nDone."
    assert scorer.score(full, exp).passed  # a chat-style answer that rewrites the whole function
    assert scorer.score("\n" + exp["reference"], exp).passed  # after a trimmed prompt the model starts a new line


@pytest.mark.parametrize("case", _cases(HUMANEVAL_WRONG), ids=lambda c: c.id)
def test_humaneval_wrong_solution_fails(scorer, case) -> None:
    exp = case.expected
    right = next(c for c in _cases(HUMANEVAL) if c.id == case.id).expected
    assert {k: v for k, v in exp.items() if k != "reference"} == {k: v for k, v in right.items() if k != "reference"}
    sc = scorer.score(exp["reference"], exp)
    assert not sc.passed and sc.details["status"] == "failed" and "assert candidate(" in sc.reason
    assert not scorer.score("    return None\n", exp).passed


def test_humaneval_redefinition_uses_the_prompts_imports_and_helpers(scorer) -> None:
    cases = {c.id: c.expected for c in _cases(HUMANEVAL)}
    # running_max's prompt imports List; the model's full rewrite leaves the import out
    rewrite = ("def running_max(numbers: List[int]) -> List[int]:\n    out = []\n    for n in numbers:\n"
               "        out.append(n if not out else max(out[-1], n))\n    return out\n")
    assert scorer.score(rewrite, cases["Sample/1"]).passed
    # sort_by_digit_sum's prompt defines the helper digit_sum
    assert scorer.score("def sort_by_digit_sum(numbers):\n    return sorted(numbers, key=digit_sum)",
                        cases["Sample/4"]).passed


def test_humaneval_garbage_is_a_syntax_error_and_trailing_prose_is_trimmed(scorer) -> None:
    exp = _cases(HUMANEVAL)[0].expected
    sc = scorer.score("I am not sure what you mean.", exp)
    assert not sc.passed and sc.details["status"] == "syntax_error"
    assert scorer.score(exp["reference"] + "\nThis counts the vowels.\n", exp).passed
    sc = scorer.score("", exp)  # nothing written: the prompt's bare docstring returns None
    assert not sc.passed and sc.details["status"] == "failed"


@pytest.mark.parametrize("case", _cases(MBPP), ids=lambda c: c.id)
def test_mbpp_reference_code_passes(scorer, case) -> None:
    exp = case.expected
    assert scorer.score(exp["reference"], exp).passed
    assert scorer.score(f"Sure.\n```python\n{exp['reference']}\n```", exp).passed


@pytest.mark.parametrize("case", _cases(MBPP_WRONG), ids=lambda c: c.id)
def test_mbpp_wrong_code_fails(scorer, case) -> None:
    exp = case.expected
    sc = scorer.score(exp["reference"], exp)
    assert not sc.passed and sc.details["status"] == "failed" and 0 <= sc.value < 1
    assert scorer.score("I don't know.", exp).details["status"] == "missing_function"


# --- a sweep on the fake model over the files as they are --------------------------------------


def _answering(suite: Suite, references_from: Suite | None = None):
    source = references_from or suite
    refs = {c.id: c.expected["reference"] for c in source.cases}
    answers = {suite.render(c): refs[c.id] for c in suite.cases}
    return lambda prompt, precision: answers[prompt]


@pytest.mark.parametrize("right, wrong", [(HUMANEVAL, HUMANEVAL_WRONG), (MBPP, MBPP_WRONG)], ids=["humaneval", "mbpp"])
def test_sweep_on_the_fake_model(tmp_path: Path, right: Path, wrong: Path) -> None:
    from qeval.config import SweepConfig
    from qeval.models import FakeSource
    from qeval.sweep import run_sweep

    suite = load_suite(right)
    config = SweepConfig(model="fake", precisions=("fp32",), suites=(str(right),), device="cpu",
                         latency_samples=0, warmup_requests=0, out_dir=str(tmp_path / "good"))
    record, path = run_sweep(config, source=FakeSource(responder=_answering(suite)))
    (cell,) = record.cells
    assert cell.status == "ok" and cell.suite == suite.name and cell.n == len(suite.cases)
    assert cell.accuracy == 1.0, [(c.case_id, c.reason) for c in cell.cases if not c.passed]
    assert json.loads((path / "results.json").read_text())["settings"]["suite_hashes"] == {suite.name: suite.content_hash}

    config = SweepConfig(model="fake", precisions=("fp32",), suites=(str(right),), device="cpu",
                         latency_samples=0, warmup_requests=0, out_dir=str(tmp_path / "bad"))
    record, bad_path = run_sweep(config, source=FakeSource(responder=_answering(suite, load_suite(wrong))))
    assert record.cells[0].accuracy == 0.0

    # the recorded completions, re-scored through the replay model: same verdicts, case by case
    for run, want in ((path, 1.0), (bad_path, 0.0)):
        config = SweepConfig(model=f"replay:{run}", precisions=("as-is",), suites=(str(right),), device="cpu",
                             latency_samples=0, warmup_requests=0, out_dir=str(tmp_path / "replayed"))
        replayed, _ = run_sweep(config)
        (cell,) = replayed.cells
        assert cell.status == "ok" and cell.n == len(suite.cases), cell.reason
        assert cell.accuracy == want


def test_cli_validates_a_file_suite() -> None:
    from typer.testing import CliRunner

    from qeval.cli import app

    result = CliRunner().invoke(app, ["suites", "validate", str(HUMANEVAL), str(MBPP)])
    assert result.exit_code == 0, result.output
    assert result.output.count("ok ") == 2 and "scorer code_exec" in result.output
