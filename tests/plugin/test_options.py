"""Every option is validated before anything is evaluated: exit 4, one clear line, no traceback."""

from __future__ import annotations

import json

import pytest

from tests.plugin.conftest import run

FAKE = ("--qeval-model", "fakemodel:right", "--qeval-latency-samples", "2", "--qeval-warmup", "0")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--qeval-slo", "accuracy >= "), "*--qeval-slo: Cannot parse SLO 'accuracy >= '*"),
        (("--qeval-slo", "p95_ttft <= 300"), "*an absolute latency needs its unit: p95_ttft_ms*"),
        (("--qeval-slo", "accuracy_ratio_vs(bf16) <= 1"), "*a ratio compares costs*"),
        (("--qeval-precisions", "int3"), "*--qeval-precisions: *int3*"),
        (("--qeval-precisions", "bf16,bf16"), "*bf16 given more than once*"),
        (("--qeval-limit", "0"), "*--qeval-limit: must be at least 1, got 0*"),
        (("--qeval-limit", "ten"), "*--qeval-limit: expected a whole number, got 'ten'*"),
        (("--qeval-inconclusive", "maybe"), "*--qeval-inconclusive: 'maybe' is not one of fail, skip, pass*"),
        (("--qeval-device", "tpu"), "*--qeval-device: unknown device 'tpu'*"),
        (("--qeval-baseline", "nope.json"), "*--qeval-baseline: nope.json does not exist*"),
        (("--qeval-slo", "accuracy_drop_vs(baseline) <= 0"), "*compares against the baseline: pass --qeval-baseline*"),
        (("--qeval-slo", "accuracy_drop_vs(int8) <= 0"), "*compares against int8, which is not in --qeval-precisions*"),
        (("--qeval-model", "nomodule:x"), "*--qeval-model: Model 'nomodule:x': cannot import module*"),
        (("--qeval-model", "no/such/folder"), "*--qeval-model: Model 'no/such/folder' not found*"),
        (("--qeval-calibration", "medicl"), "*--qeval-calibration: *medical*"),
    ],
)
def test_bad_options_are_usage_errors(project, args, message):
    result = run(project, "--qeval", "mini", *FAKE, *args)
    assert result.ret == 4
    result.stderr.fnmatch_lines(["ERROR: " + message.lstrip("*")] if message.startswith("*--") else [message])
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


def test_slo_on_a_metric_the_suite_lacks_is_a_collection_error(project):
    result = run(project, "--qeval", "mini", *FAKE, "--qeval-slo", "f1 >= 0.5")
    assert result.ret == 2
    result.stdout.fnmatch_lines(["*SLO 'f1 >= 0.5' names metric 'f1', which suite 'mini' (scorer numeric) does not produce*"])


def test_bad_slo_in_suite_yaml_names_the_file(project):
    yaml = project.path / "mini" / "suite.yaml"
    yaml.write_text(yaml.read_text().replace('slos: ["accuracy >= 0.5"]', 'slos: ["accuracy >> 0.5"]'))
    result = run(project, "--qeval", "mini", *FAKE)
    assert result.ret == 2
    result.stdout.fnmatch_lines(["*mini/suite.yaml slos: Cannot parse SLO 'accuracy >> 0.5'*"])


def test_settings_come_from_tool_qeval_and_the_command_line_wins(project):
    project.makepyprojecttoml("""
        [tool.qeval]
        model = "fakemodel:int4_odd"
        precisions = ["bf16", "int4"]
        slos = ["accuracy >= 0.7"]
        latency_samples = 2
        warmup = 0
    """)
    result = run(project, "-v", "--qeval", "mini")
    result.stdout.fnmatch_lines(["*mini::bf16::accuracy>=0.7 PASSED*", "*mini::int4::accuracy>=0.7 FAILED*"])
    result = run(project, "-v", "--qeval", "mini", "--qeval-precisions", "bf16")
    result.assert_outcomes(passed=1)


def test_unknown_tool_qeval_key_is_refused(project):
    project.makepyprojecttoml("""
        [tool.qeval]
        modle = "fake"
    """)
    result = run(project, "--qeval", "mini")
    assert result.ret == 4
    result.stderr.fnmatch_lines(["*unknown key(s) in [[]tool.qeval[]]: modle*"])


def test_ini_options_work(project):
    project.makeini("""
        [pytest]
        qeval_model = fakemodel:right
        qeval_precisions = bf16
        qeval_latency_samples = 2
        qeval_slo =
            accuracy >= 0.7
    """)
    result = run(project, "-v", "--qeval", "mini")
    result.stdout.fnmatch_lines(["*mini::bf16::accuracy>=0.7 PASSED*"])


def test_several_calibration_sets_point_to_the_sweep(project):
    result = run(project, "--qeval", "mini", *FAKE, "--qeval-precisions", "gptq-int4",
                 "--qeval-calibration", "generic,medical")
    assert result.ret == 4
    result.stderr.fnmatch_lines(["*a test session calibrates with one set*qeval sweep --calibration a,b*"])


def test_gptq_needs_a_calibration_set(project):
    result = run(project, "--qeval", "mini", *FAKE, "--qeval-precisions", "gptq-int4")
    assert result.ret == 4
    result.stderr.fnmatch_lines(["*gptq-int4 need(s) calibration text: pass --qeval-calibration NAME*"])


def test_calibration_seeds_gate_each_seed_of_a_calibrated_precision(project):
    args = ("--qeval", "mini", "--qeval-model", "fakemodel:right", "--qeval-latency-samples", "0",
            "--qeval-precisions", "bf16,gptq-int4", "--qeval-calibration", "generic", "--qeval-calibration-samples", "4",
            "--qeval-calibration-seeds", "2")
    result = run(project, "-v", *args, "--qeval-slo", "accuracy >= 0.5")
    result.stdout.fnmatch_lines([
        "*mini::bf16::accuracy>=0.5 PASSED*",
        "*mini::gptq-int4@generic/s0::accuracy>=0.5 PASSED*",
        "*mini::gptq-int4@generic/s1::accuracy>=0.5 PASSED*",
    ])
    (results,) = (project.path / "reports").glob("*/results.json")
    data = json.loads(results.read_text())
    assert [(c["precision"], (c["precision_config"]["calibration"] or {}).get("seed")) for c in data["cells"]] == [
        ("bf16", None), ("gptq-int4@generic/s0", 0), ("gptq-int4@generic/s1", 1)]
    assert [v["label"] for v in data["settings"]["calibration_variants"]] == ["gptq-int4@generic/s0", "gptq-int4@generic/s1"]
    refused = run(project, *args, "--qeval-slo", "accuracy_drop_vs(gptq-int4) <= 0.1")
    assert refused.ret == 4
    refused.stderr.fnmatch_lines(["*compares against gptq-int4, which --qeval-calibration-seeds 2 evaluates once per "
                                  "seed (gptq-int4@generic/s0, gptq-int4@generic/s1)*"])
