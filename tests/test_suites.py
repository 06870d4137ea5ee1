from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qeval.generation import GenerationSettings
from qeval.errors import SuiteError
from qeval.suites import Case, Suite, load_suite

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ["arithmetic", "code", "extraction", "medical"]

GOOD_YAML = """\
name: demo
description: a tiny suite
prompt_template: "What is {{ a }} + {{ b }}?"
chat_template: true
system_prompt: null
generation: {max_new_tokens: 16, stop: ["\\n"], batch_size: 4}
scorer: {name: numeric, args: {tolerance: 0}}
slos: ["accuracy >= 0.3"]
"""
GOOD_CASES = [
    {"id": "c1", "inputs": {"a": 1, "b": 2}, "expected": 3, "tags": {"difficulty": "easy"}},
    {"id": "c2", "inputs": {"a": 5, "b": 5}, "expected": 10},
]


def write(tmp_path: Path, yaml_text: str = GOOD_YAML, lines: list | None = None) -> Path:
    (tmp_path / "suite.yaml").write_text(yaml_text)
    rows = GOOD_CASES if lines is None else lines
    (tmp_path / "cases.jsonl").write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return tmp_path


def error_of(path: Path) -> str:
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    return str(info.value)


def test_good_suite_loads(tmp_path: Path) -> None:
    suite = load_suite(write(tmp_path))
    assert isinstance(suite, Suite) and suite.name == "demo" and suite.path == tmp_path
    assert suite.generation == GenerationSettings(max_new_tokens=16, stop=("\n",), batch_size=4)
    assert suite.slos == ("accuracy >= 0.3",) and suite.chat_template and suite.system_prompt is None
    assert suite.primary_metric == "accuracy"
    assert [c.id for c in suite.cases] == ["c1", "c2"] and isinstance(suite.cases[0], Case)
    assert suite.cases[0].tags["difficulty"] == "easy" and dict(suite.cases[1].tags) == {}
    assert suite.render(suite.cases[0]) == "What is 1 + 2?"
    assert suite.scorer().score("The answer is 3.", 3).passed
    assert len(suite.content_hash) == 64
    assert suite.limited(1).cases == suite.cases[:1] and suite.limited(None) is suite
    assert suite.limited(5) is suite
    assert len(suite.cases) == 2  # limited() built a new object


def test_hash_changes_with_content(tmp_path: Path) -> None:
    h1 = load_suite(write(tmp_path)).content_hash
    h2 = load_suite(write(tmp_path, lines=GOOD_CASES[:1])).content_hash
    assert h1 != h2


def test_missing_files(tmp_path: Path) -> None:
    assert "not found" in error_of(tmp_path / "nope")
    (tmp_path / "cases.jsonl").write_text(json.dumps(GOOD_CASES[0]))
    assert "suite.yaml" in error_of(tmp_path)
    (tmp_path / "cases.jsonl").unlink()
    (tmp_path / "suite.yaml").write_text(GOOD_YAML)
    assert "cases.jsonl" in error_of(tmp_path)


def test_yaml_syntax_error(tmp_path: Path) -> None:
    msg = error_of(write(tmp_path, GOOD_YAML + "bad: [unclosed\n"))
    assert "suite.yaml:" in msg and "YAML syntax" in msg


def test_unknown_key_names_line_and_key(tmp_path: Path) -> None:
    msg = error_of(write(tmp_path, GOOD_YAML + "temprature: 0.7\n"))
    assert "suite.yaml:9" in msg and "temprature" in msg and "allowed" in msg


def test_unknown_nested_key(tmp_path: Path) -> None:
    msg = error_of(write(tmp_path, GOOD_YAML.replace("batch_size: 4", "batchsize: 4")))
    assert "suite.yaml:6" in msg and "generation.batchsize" in msg and "batch_size" in msg


def test_missing_key(tmp_path: Path) -> None:
    msg = error_of(write(tmp_path, GOOD_YAML.replace('prompt_template: "What is {{ a }} + {{ b }}?"\n', "")))
    assert "suite.yaml" in msg and "prompt_template" in msg and "missing" in msg


def test_mistyped_key(tmp_path: Path) -> None:
    msg = error_of(write(tmp_path, GOOD_YAML.replace("max_new_tokens: 16", "max_new_tokens: lots")))
    assert "suite.yaml:6" in msg and "generation.max_new_tokens" in msg and "lots" in msg


def test_unknown_scorer_did_you_mean(tmp_path: Path) -> None:
    msg = error_of(write(tmp_path, GOOD_YAML.replace("name: numeric", "name: numerik")))
    assert "suite.yaml:7" in msg and "scorer.name" in msg and "Did you mean 'numeric'" in msg


def test_bad_scorer_args(tmp_path: Path) -> None:
    msg = error_of(write(tmp_path, GOOD_YAML.replace("tolerance: 0", "tolerence: 0")))
    assert "suite.yaml:7" in msg and "scorer.args" in msg and "tolerence" in msg


def test_unknown_primary_metric(tmp_path: Path) -> None:
    msg = error_of(write(tmp_path, GOOD_YAML + "primary_metric: f1\n"))
    assert "suite.yaml:9" in msg and "primary_metric" in msg and "unparseable_rate" in msg


def test_template_syntax_error(tmp_path: Path) -> None:
    msg = error_of(write(tmp_path, GOOD_YAML.replace("{{ b }}?", "{{ b ?")))
    assert "suite.yaml:3" in msg and "prompt_template" in msg


def test_bad_json_line(tmp_path: Path) -> None:
    msg = error_of(write(tmp_path, lines=[GOOD_CASES[0], '{"id": "c2", "expected": 3,,}']))
    assert "cases.jsonl:2" in msg and "invalid JSON" in msg


@pytest.mark.parametrize("key", ["id", "expected"])
def test_missing_id_or_expected(tmp_path: Path, key: str) -> None:
    bad = {k: v for k, v in GOOD_CASES[1].items() if k != key}
    msg = error_of(write(tmp_path, lines=[GOOD_CASES[0], bad]))
    assert "cases.jsonl:2" in msg and repr(key) in msg


def test_unknown_and_mistyped_case_keys(tmp_path: Path) -> None:
    msg = error_of(write(tmp_path, lines=[GOOD_CASES[0], {**GOOD_CASES[1], "tag": {}}]))
    assert "cases.jsonl:2" in msg and "'tag'" in msg
    msg = error_of(write(tmp_path, lines=[{**GOOD_CASES[0], "id": 7}]))
    assert "cases.jsonl:1" in msg and "'id'" in msg


def test_duplicate_ids_name_both_lines(tmp_path: Path) -> None:
    msg = error_of(write(tmp_path, lines=[GOOD_CASES[0], GOOD_CASES[1], {**GOOD_CASES[1], "inputs": {"a": 0, "b": 0}}]))
    assert "cases.jsonl:3" in msg and "line 2" in msg and "'c2'" in msg


def test_empty_suite(tmp_path: Path) -> None:
    msg = error_of(write(tmp_path, lines=[""]))
    assert "cases.jsonl" in msg and "no cases" in msg


def test_template_field_missing_in_case(tmp_path: Path) -> None:
    msg = error_of(write(tmp_path, lines=[GOOD_CASES[0], {"id": "c2", "inputs": {"a": 1}, "expected": 1}]))
    assert "cases.jsonl:2" in msg and "'b'" in msg and "inputs" in msg


@pytest.fixture(scope="module", params=SHIPPED)
def shipped(request) -> Suite:
    return load_suite(ROOT / "suites" / request.param)


def test_shipped_suite_shape(shipped: Suite) -> None:
    assert len(shipped.cases) >= 60
    assert len({c.id for c in shipped.cases}) == len(shipped.cases)
    levels = {c.tags.get("difficulty") for c in shipped.cases}
    assert levels == {"easy", "medium", "hard"}
    assert shipped.primary_metric in {"accuracy", *shipped.scorer().aggregate([])}
    assert shipped.slos and (shipped.path / "README.md").is_file()
    for case in shipped.cases:
        assert shipped.render(case).strip()


def _as_completion(suite: Suite, case: Case) -> str:
    if suite.scorer_name == "code_exec":
        return f"```python\n{case.expected['reference']}```"
    if suite.scorer_name == "numeric":
        return f"The answer is {case.expected}."
    return json.dumps(case.expected)


def test_shipped_expected_answers_pass(shipped: Suite) -> None:
    scorer = shipped.scorer()
    failures = [(c.id, s.reason) for c in shipped.cases
                if not (s := scorer.score(_as_completion(shipped, c), c.expected)).passed]
    assert failures == []



@given(total=st.integers(1, 80), n=st.integers(1, 100))
def test_limited_spreads_evenly_and_keeps_order(total, n):
    import dataclasses

    base = load_suite(ROOT / "tests" / "data" / "suites" / "mini")
    suite = dataclasses.replace(base, cases=tuple(Case(id=f"c{i}", inputs={"a": i, "b": 0}, expected=i) for i in range(total)))
    picked = [c.expected for c in suite.limited(n).cases]
    assert len(picked) == min(n, total)
    assert picked == sorted(set(picked))  # distinct, in file order
    assert picked[0] == 0
    if n < total:
        # evenly spaced: every gap is floor or ceil of total / n
        gaps = {b - a for a, b in zip(picked, picked[1:])}
        assert gaps <= {total // n, -(-total // n)}
