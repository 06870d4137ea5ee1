"""Stored runs of schema 1 (free-form environment/settings dicts) read into the typed records;
schema 2 written and read back is the identity."""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qeval.compare import compare_runs
from qeval.generation import GenerationSettings
from qeval.errors import ReportError
from qeval.report import (
    read_record,
    read_results,
    render_comparison_markdown,
    render_markdown,
    write_record,
    write_report,
)
from qeval.results import (
    SCHEMA_VERSION,
    CachedCell,
    CalibrationRecord,
    CalibrationVariant,
    CpuInfo,
    CudaInfo,
    Environment,
    Resumed,
    RunSettings,
    TorchInfo,
)
from tests.report.conftest import make_record

V1_RUN = Path(__file__).resolve().parents[1] / "data" / "schema_v1" / "run-v1"
"""Written by qeval at schema 1 (see its README): results.json + samples.jsonl, and the same run as one
record file (the ``--qeval-save-baseline`` format)."""


def as_v1(data: dict) -> dict:
    """A schema-2 results/record dict as schema 1 wrote it (the two keys whose shape changed)."""
    old = json.loads(json.dumps(data))
    old["schema_version"] = 1
    for variant in old["settings"]["calibration_variants"]:
        variant["set"] = variant.pop("calibration_set")
    old["settings"]["cached_cells"] = {f"{c['suite']}/{c['precision']}": c["run_id"] for c in old["settings"]["cached_cells"]}
    return old


def test_schema_v1_fixture_is_schema_1():
    assert json.loads((V1_RUN / "results.json").read_text())["schema_version"] == 1
    assert json.loads((V1_RUN / "record.json").read_text())["schema_version"] == 1


def test_a_v1_run_folder_reads_into_typed_records():
    record = read_record(V1_RUN)
    assert record.schema_version == SCHEMA_VERSION
    env = record.environment
    assert isinstance(env, Environment)
    assert env.device == "cpu" and env.host_id == "0123456789ab" and env.memory_total_bytes == 67_108_864_000
    assert env.cpu == CpuInfo(model="AMD EPYC 9654 96-Core Processor", logical_cores=8, usable_cores=4,
                              load_average_1m=0.42)
    assert env.torch == TorchInfo(available=True, threads=4, interop_threads=4, cuda_build=None,
                                  probed="earlier run (torch not imported in this one)")
    assert env.cuda is None
    assert env.packages["torchao"] == "not installed" and env.env_vars == {"OMP_NUM_THREADS": "4"}

    s = record.settings
    assert isinstance(s, RunSettings)
    assert s.calibration == CalibrationRecord(
        name="generic", path="calibration/generic/calibration.jsonl", content_hash="c" * 64, sample_hash="s" * 64,
        samples=128, seed=0, available=512,
    )
    assert s.calibration_variants == (CalibrationVariant(
        label="gptq-int4[generic,seed=1]", precision="gptq-int4", calibration_set="generic", seed=1,
        sample_hash="s" * 64, target=None,
    ),)
    assert s.precisions == ("fp32", "gptq-int4") and s.suites == ("suites/arithmetic",)
    assert s.suite_hashes == {"arith": "a" * 64}
    assert (s.device, s.limit, s.latency_samples, s.warmup_requests, s.batch_size, s.concurrency) == ("cpu", 4, 8, 2, None, 8)
    assert s.generation == {"arith": GenerationSettings(max_new_tokens=16, stop=("\n",), batch_size=4)}
    assert s.resumed == Resumed(reused_precisions=("fp32",), partial_precisions=("gptq-int4",), device="cpu",
                                note="Resumed.")
    assert s.incomplete is True
    assert s.cached_cells == (CachedCell(suite="arith", precision="fp32", run_id="run-000"),)
    assert s.slos == ("accuracy >= 0.5",)
    assert [c.status for c in record.cells] == ["ok", "skipped"] and len(record.cells[0].cases) == 4


def test_a_v1_record_file_reads_the_same_as_its_run_folder():
    assert read_record(V1_RUN / "record.json") == read_record(V1_RUN)


def test_keys_schema_1_had_but_no_field_names_are_dropped():
    data = read_results(V1_RUN)
    assert "future_key" not in data["environment"] and "temperature" not in data["settings"]


def test_a_v1_file_missing_keys_takes_the_defaults(tmp_path):
    data = json.loads((V1_RUN / "record.json").read_text())
    data["environment"] = {"device": "cpu", "torch": {"threads": 2}}  # as the oldest records had them
    data["settings"] = {"suite_hashes": {"arith": "a" * 64}, "limit": 4}
    path = tmp_path / "old.json"
    path.write_text(json.dumps(data))
    record = read_record(path)
    assert record.environment == Environment(device="cpu", torch=TorchInfo(threads=2))
    assert record.settings == RunSettings(suite_hashes={"arith": "a" * 64}, limit=4)
    del data["environment"], data["settings"]
    path.write_text(json.dumps(data))
    assert read_record(path).environment == Environment() and read_record(path).settings == RunSettings()


def test_a_v1_value_of_the_wrong_type_is_a_clear_error(tmp_path):
    data = json.loads((V1_RUN / "record.json").read_text())
    data["settings"]["limit"] = "four"
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ReportError, match=r"bad.json: key 'settings.limit'.*re-run"):
        read_record(path)


def test_a_v1_run_rewritten_is_schema_2_and_reads_back_the_same(tmp_path):
    record = read_record(V1_RUN)
    folder = write_report(record, tmp_path, views=False)
    data = json.loads((folder / "results.json").read_text())
    assert data["schema_version"] == 2
    assert data["settings"]["calibration_variants"][0]["calibration_set"] == "generic"
    assert data["settings"]["cached_cells"] == [{"suite": "arith", "precision": "fp32", "run_id": "run-000"}]
    assert read_record(folder) == record
    assert read_record(write_record(record, tmp_path / "record.json")) == record


def test_reports_and_comparisons_take_a_v1_baseline(tmp_path):
    baseline = read_record(V1_RUN)
    current = make_record(cells=baseline.cells, run_id="now")
    cmp = compare_runs(baseline, current)
    assert any(d.startswith("cpu.model: AMD EPYC 9654 96-Core Processor != None") for d in cmp.env_differences)
    assert "| cpu.model | AMD EPYC 9654 96-Core Processor | — | DIFFERS |" in render_comparison_markdown(cmp)
    text = render_markdown(baseline)
    assert "| cpu.model | AMD EPYC 9654 96-Core Processor |" in text
    assert "| calibration_variants |" in text and "| cached_cells |" in text


def test_cli_compare_and_recommend_read_a_v1_folder(tmp_path):
    from typer.testing import CliRunner

    from qeval.cli import app

    run = shutil.copytree(V1_RUN, tmp_path / "run-v1")
    result = CliRunner().invoke(app, ["compare", str(run), str(run / "record.json")])
    assert result.exit_code == 0, result.output
    assert "no regression" in result.output.lower()
    result = CliRunner().invoke(app, ["recommend", str(run), "--slo", "accuracy >= 0.1"])
    assert result.exit_code == 0 and "Report:" in result.output, result.output
    assert (run / "recommendation.json").is_file() and (run / "report.html").is_file()


def test_other_schema_versions_are_still_refused(tmp_path):
    data = json.loads((V1_RUN / "results.json").read_text())
    for version in (0, 3, "1", True, None):
        data["schema_version"] = version
        (tmp_path / "results.json").write_text(json.dumps(data))
        with pytest.raises(ReportError, match=r"reads schema_version 2 or 1\. Read it with the qeval version"):
            read_results(tmp_path)


# --- schema 2: written then read is the identity ---------------------------------------------

text = st.text(max_size=12)
texts = st.lists(text, max_size=2).map(tuple)
maybe_text = st.none() | text
maybe_int = st.none() | st.integers(min_value=0, max_value=2**53)
names = st.dictionaries(text, text, max_size=3)
# schema 1 keyed a cached cell "suite/precision": unique cells, precision names without "/" (as target names are)
cached_cells = st.lists(
    st.builds(CachedCell, suite=text, precision=st.text(alphabet=st.characters(exclude_characters="/"), max_size=8),
              run_id=text),
    max_size=2, unique_by=lambda c: (c.suite, c.precision),
).map(tuple)

environments = st.builds(
    Environment,
    device=maybe_text, device_name=maybe_text, python=maybe_text, python_implementation=maybe_text,
    platform=maybe_text, machine=maybe_text, packages=names,
    cpu=st.builds(CpuInfo, model=maybe_text, logical_cores=maybe_int, usable_cores=maybe_int,
                  load_average_1m=st.none() | st.floats(allow_nan=False, allow_infinity=False)),
    memory_total_bytes=maybe_int,
    torch=st.builds(TorchInfo, available=st.booleans(), threads=maybe_int, interop_threads=maybe_int,
                    cuda_build=maybe_text, probed=maybe_text),
    cuda=st.none() | st.builds(CudaInfo, available=st.booleans(), name=maybe_text, capability=maybe_text,
                               memory_bytes=maybe_int, device_count=maybe_int, runtime=maybe_text,
                               driver=maybe_text, error=maybe_text),
    env_vars=names, host_id=maybe_text,
)
run_settings = st.builds(
    RunSettings,
    precisions=texts, targets=texts, concurrency=maybe_int, suites=texts,
    suite_hashes=names, device=maybe_text, limit=maybe_int, latency_samples=maybe_int, warmup_requests=maybe_int,
    batch_size=maybe_int,
    generation=st.dictionaries(text, st.builds(GenerationSettings, max_new_tokens=st.integers(1, 4096),
                                               stop=texts, batch_size=st.integers(1, 64)), max_size=2),
    calibration=st.none() | st.builds(CalibrationRecord, name=text, path=text, content_hash=text, sample_hash=text,
                                      samples=st.integers(0, 10**6), seed=st.integers(0, 10**6),
                                      available=st.integers(0, 10**6)),
    calibration_variants=st.lists(st.builds(CalibrationVariant, label=text, precision=text, calibration_set=text,
                                            seed=st.integers(0, 99), sample_hash=text, target=maybe_text),
                                  max_size=2).map(tuple),
    resumed=st.none() | st.builds(Resumed, reused_precisions=texts, partial_precisions=texts,
                                  device=maybe_text, note=text),
    incomplete=st.booleans(),
    cached_cells=cached_cells,
    slos=texts,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(environment=environments, run_settings_=run_settings)
def test_v2_written_then_read_is_the_identity(environment, run_settings_):
    record = make_record(environment=environment, settings=run_settings_)
    with tempfile.TemporaryDirectory() as tmp:
        assert read_record(write_record(record, Path(tmp) / "record.json")) == record
        folder = write_report(record, Path(tmp), views=False)
        assert read_record(folder) == record
        v1 = Path(tmp) / "as_v1.json"
        v1.write_text(json.dumps(as_v1(json.loads((Path(tmp) / "record.json").read_text()))))
        assert read_record(v1) == record  # and its schema-1 form reads to the same records


def test_the_record_fixture_round_trips(record, tmp_path):
    assert read_record(write_record(record, tmp_path / "r.json")) == record
    assert read_record(write_report(replace(record, run_id="again"), tmp_path, views=False)) == replace(record, run_id="again")
