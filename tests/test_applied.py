"""AppliedPrecision: the typed record of what a target applied, and its schema-1 reading."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from qeval.applied import AppliedPrecision, EndpointIdentity, EndpointUsed, ReplayUsed
from qeval.results import CalibrationRecord, to_dict

CAL = {"name": "generic", "path": "calibration/generic/calibration.jsonl", "content_hash": "a" * 64,
       "sample_hash": "b" * 64, "samples": 8, "seed": 1, "available": 100}


def test_known_names_become_fields_and_the_rest_details():
    applied = AppliedPrecision.build(precision="gptq-int4", group_size=128, layers_skipped=["lm_head"],
                                     calibration=CAL, cache="hit", kernel="torch", damp_percent=0.05)
    assert applied.group_size == 128 and applied.layers_skipped == ("lm_head",) and applied.cache == "hit"
    assert applied.calibration == CalibrationRecord(**CAL)
    assert applied.details == {"kernel": "torch", "damp_percent": 0.05}
    assert not applied.remote


def test_a_schema_1_endpoint_config_is_nested_under_endpoint():
    flat = {"kind": "openai", "url": "http://h:8000/v1", "served_model": "m", "revision": "r1",
            "api_key_env": "KEY_VAR", "concurrency": 8, "client_host": "box",
            "identity": {"base_url": "http://h:8000/v1", "model": "m", "server_header": "uvicorn",
                         "version": {"version": "0.32.0"}, "models_listed": ["m"]}}
    applied = AppliedPrecision.from_json(flat)
    assert applied.remote and applied.details == {}
    assert applied.endpoint == EndpointUsed(
        url="http://h:8000/v1", served_model="m", revision="r1", api_key_env="KEY_VAR", concurrency=8,
        client_host="box", identity=EndpointIdentity(base_url="http://h:8000/v1", model="m", models_listed=("m",),
                                                     server_header="uvicorn", version={"version": "0.32.0"}),
    )


def test_a_schema_1_replay_config_becomes_a_replay_record():
    applied = AppliedPrecision.from_json({"precision": "as-is", "replay": "/r/samples.jsonl", "replay_sha256": "c" * 64,
                                          "recorded_precision": "int4"})
    assert applied.replay == ReplayUsed(path="/r/samples.jsonl", sha256="c" * 64, recorded_precision="int4")
    assert applied.precision == "as-is" and applied.details == {}


def test_a_partial_calibration_or_identity_is_kept_as_shown_not_read():
    applied = AppliedPrecision.from_json({"calibration": {"name": "generic"}, "scheme": "int8_weight_only"})
    assert applied.calibration is None and applied.details == {"calibration": {"name": "generic"}}
    assert applied.scheme == {"name": "int8_weight_only"}
    assert EndpointIdentity.from_json({}) is None


_values = st.one_of(st.none(), st.integers(), st.text(max_size=8), st.booleans())


@given(
    precision=st.one_of(st.none(), st.text(max_size=10)),
    group_size=st.one_of(st.none(), st.integers(1, 512)),
    skipped=st.lists(st.text(max_size=6), max_size=3),
    calibrated=st.booleans(),
    endpoint=st.booleans(),
    details=st.dictionaries(st.text(min_size=1, max_size=6).map(lambda k: "x_" + k), _values, max_size=4),
)
def test_the_json_form_reads_back_to_the_same_record(precision, group_size, skipped, calibrated, endpoint, details):
    applied = AppliedPrecision(
        precision=precision, group_size=group_size, layers_skipped=tuple(skipped),
        calibration=CalibrationRecord(**CAL) if calibrated else None,
        endpoint=EndpointUsed(url="http://x/v1", identity=EndpointIdentity(base_url="http://x/v1", model="m"))
        if endpoint else None,
        details=details,
    )
    assert AppliedPrecision.from_json(to_dict(applied)) == applied


def test_a_v1_run_with_an_endpoint_target_reads_into_typed_records(tmp_path):
    import json
    import shutil
    from pathlib import Path

    from qeval.report import read_record

    folder = tmp_path / "run"
    shutil.copytree(Path(__file__).resolve().parent / "data" / "schema_v1" / "run-v1", folder)
    data = json.loads((folder / "results.json").read_text())
    assert data["schema_version"] == 1
    identity = {"base_url": "http://h:8000/v1", "model": "m", "models_listed": ["m"], "max_model_len": 2048,
                "server_header": "uvicorn", "version": {"version": "0.32.0"}, "props": None}
    data["cells"][1]["precision_config"] = {"kind": "openai", "url": "http://h:8000/v1", "served_model": "m",
                                            "revision": None, "api_key_env": None, "concurrency": 8,
                                            "identity": identity, "client_host": "box"}
    data["targets"] = [
        {"name": data["cells"][0]["precision"], "kind": "model", "spec": "smollm2-135m@fp32", "card": data["model"],
         "remote": False, "revision": None, "identity": {}, "client_host": None},
        {"name": data["cells"][1]["precision"], "kind": "openai", "spec": "openai:http://h:8000/v1#m",
         "card": data["model"], "remote": True, "revision": None, "identity": identity, "client_host": "box"},
    ]
    (folder / "results.json").write_text(json.dumps(data))
    record = read_record(folder)
    local, served = record.targets
    assert local.identity is None
    assert served.identity == EndpointIdentity(base_url="http://h:8000/v1", model="m", models_listed=("m",),
                                               max_model_len=2048, server_header="uvicorn",
                                               version={"version": "0.32.0"})
    cell = record.cells[1]
    assert cell.precision_config.remote and cell.precision_config.endpoint is not None
    assert cell.precision_config.endpoint.identity == served.identity
    assert record.cells[0].precision_config == AppliedPrecision(library="torchao", scheme={"name": "int8_weight_only"})
