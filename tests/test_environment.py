import json
import socket
import sys

import pytest

from qeval.environment import (
    NOT_INSTALLED,
    cpu_model,
    fingerprint,
    fingerprint_differences,
    host_id,
    package_versions,
)

BACKENDS = ("torchao", "optimum.quanto", "bitsandbytes", "hqq", "gptqmodel")


@pytest.fixture(scope="module")
def cpu_fp():
    before = {name for name in BACKENDS if name in sys.modules}
    fp = fingerprint("cpu")
    after = {name for name in BACKENDS if name in sys.modules}
    return fp, after - before


def test_fingerprint_keys_and_types(cpu_fp):
    fp, _ = cpu_fp
    assert fp["device"] == "cpu"
    assert fp["python"].count(".") == 2
    assert isinstance(fp["platform"], str)
    for name in ("torch", "transformers", "torchao", "optimum-quanto", "bitsandbytes", "hqq", "numpy"):
        assert isinstance(fp["packages"][name], str) and fp["packages"][name], name
    assert fp["packages"]["numpy"] != NOT_INSTALLED
    assert isinstance(fp["cpu"]["model"], str) and fp["cpu"]["model"]
    assert fp["device_name"] == fp["cpu"]["model"]
    assert isinstance(fp["cpu"]["logical_cores"], int)
    assert fp["cuda"] is None
    if fp["torch"]["available"]:
        assert isinstance(fp["torch"]["threads"], int) and fp["torch"]["threads"] >= 1
    json.dumps(fp, allow_nan=False)  # JSON-ready as is


def test_fingerprint_imports_no_backend(cpu_fp):
    _, newly_imported = cpu_fp
    assert newly_imported == set()


def test_hostname_is_not_recorded(cpu_fp):
    fp, _ = cpu_fp
    name = socket.gethostname()
    if len(name) >= 4:
        assert name not in json.dumps(fp)
    assert fp["host_id"] == host_id() and len(fp["host_id"]) == 12


def test_missing_package_is_not_installed():
    assert package_versions(("qeval-no-such-distribution",)) == {"qeval-no-such-distribution": NOT_INSTALLED}


def test_cpu_model_from_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 9654 96-Core Processor\n")
    assert cpu_model(info) == "AMD EPYC 9654 96-Core Processor"
    assert isinstance(cpu_model(tmp_path / "absent"), str)


def test_cuda_device_without_cuda_does_not_raise():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        fp = fingerprint("cuda")
        assert fp["cuda"]["available"] is True
        assert fp["cuda"]["name"] == fp["device_name"]
        assert "." in fp["cuda"]["capability"]
    else:
        fp = fingerprint("cuda")
        assert fp["cuda"]["available"] is False
        assert "driver" in fp["cuda"]


def test_fingerprint_differences():
    a = {"device": "cpu", "packages": {"torch": "2.13.0", "numpy": "2.4"}, "cpu": {"model": "EPYC"}, "torch": {"threads": 2}}
    b = {"device": "cpu", "packages": {"torch": "2.12.1", "numpy": "2.4"}, "cpu": {"model": "EPYC"}, "torch": {"threads": 4}}
    assert fingerprint_differences(a, a) == []
    assert fingerprint_differences(a, b) == ["packages.torch: 2.13.0 != 2.12.1", "torch.threads: 2 != 4"]


def test_a_cpu_fingerprint_reuses_an_earlier_torch_probe(tmp_path, monkeypatch):
    from qeval import environment

    probe = {"available": True, "threads": 7, "interop_threads": 3, "cuda_build": None}
    key = environment._torch_probe_key("cpu")
    (tmp_path / f"torch-probe-{key}.json").write_text(json.dumps(probe))
    monkeypatch.delitem(sys.modules, "torch")  # as in a process that has not imported it
    fp = fingerprint("cpu", torch_probe_dir=tmp_path)
    assert fp["torch"]["threads"] == 7 and fp["torch"]["probed"].startswith("earlier run")
    assert "torch" not in sys.modules


def test_the_torch_probe_is_keyed_by_thread_variables(monkeypatch):
    from qeval import environment

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    before = environment._torch_probe_key("cpu")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert environment._torch_probe_key("cpu") != before


def test_with_torch_imported_the_probe_is_measured_not_read(tmp_path):
    import torch

    from qeval import environment

    key = environment._torch_probe_key("cpu")
    (tmp_path / f"torch-probe-{key}.json").write_text(json.dumps({"threads": 999}))
    assert fingerprint("cpu", torch_probe_dir=tmp_path)["torch"]["threads"] == torch.get_num_threads()


def test_cpu_only_torch_reads_the_build_without_importing_it():
    import torch

    from qeval.models import cpu_only_torch

    assert cpu_only_torch() == (torch.version.cuda is None and torch.version.hip is None)
