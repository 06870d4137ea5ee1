"""``qeval workload describe`` as a user meets it: the table, or one error line and exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from qeval.cli import app

runner = CliRunner()


def _run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output + (result.stderr if result.stderr_bytes is not None else "")


def _trace(path: Path, lines: list[dict[str, object]]) -> Path:
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def trace(tmp_path: Path) -> Path:
    return _trace(tmp_path / "trace.jsonl", [
        {"prompt": "one two three", "max_tokens": 64, "offset_s": 0.0},
        {"messages": [{"role": "user", "content": "four five"}], "max_tokens": 32, "offset_s": 0.5},
        {"prompt": "six", "max_tokens": 16, "offset_s": 1.0},
        {"prompt": "seven eight", "max_tokens": 16, "offset_s": 1.5},
    ])


def test_describe_prints_lengths_and_arrivals(trace):
    code, out = _run("workload", "describe", str(trace))
    assert code == 0, out
    assert "4 requests (1 chat, 3 raw prompt)" in out
    assert "characters" in out and "max_tokens (limit)" in out
    assert "1.5 s" in out and "2 req/s" in out
    assert "--rate 2 --arrival constant" in out


def test_describe_an_untimed_trace_says_arrivals_are_not_recorded(tmp_path):
    code, out = _run("workload", "describe", str(_trace(tmp_path / "t.jsonl", [{"prompt": "a"}, {"prompt": "b"}])))
    assert code == 0, out
    assert "Arrivals: not recorded" in out and "not recorded (no output_tokens" in out


def test_a_bad_line_exits_2_naming_the_line_without_a_traceback(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"prompt": "fine"}\n\n{"prompt": "a", "messages": []}\n', encoding="utf-8")
    code, out = _run("workload", "describe", str(path))
    assert code == 2, out
    assert "line 3" in out and 'exactly one of "prompt" or "messages"' in out
    assert "Traceback" not in out


def test_a_missing_file_exits_2(tmp_path):
    code, out = _run("workload", "describe", str(tmp_path / "nope.jsonl"))
    assert code == 2 and "cannot read it" in out and "Traceback" not in out


def _word_tokenizer(folder: Path) -> Path:
    """A tokenizer with one token per whitespace-separated word, saved like save_pretrained does."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = Tokenizer(models.WordLevel({"[UNK]": 0}, unk_token="[UNK]"))
    words.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    PreTrainedTokenizerFast(tokenizer_object=words, unk_token="[UNK]").save_pretrained(folder)
    return folder


def test_tokenizer_counts_prompt_tokens(trace, tmp_path):
    code, out = _run("workload", "describe", str(trace), "--tokenizer", str(_word_tokenizer(tmp_path / "tok")))
    assert code == 0, out
    assert "tokens (tokenizer)" in out
    prompt_row = next(line for line in out.splitlines() if "prompt" in line and "tokens" in line)
    # words per prompt: 3, 2, 1, 2 (chat contents too)
    assert [c.strip() for c in prompt_row.split("│")[1:-1]] == ["prompt", "2", "2.7", "3.0", "3", "tokens (tokenizer)"]


def test_a_folder_without_a_tokenizer_exits_2(trace, tmp_path):
    code, out = _run("workload", "describe", str(trace), "--tokenizer", str(tmp_path))
    assert code == 2, out
    assert "--tokenizer" in out and "cannot load a tokenizer" in out and "Traceback" not in out
    code, out = _run("workload", "describe", str(trace), "--tokenizer", str(tmp_path / "absent"))
    assert code == 2 and "no such folder" in out
