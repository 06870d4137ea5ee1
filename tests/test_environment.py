import json
import socket
import sys

import pytest

from qeval.environment import (
    NOT_INSTALLED,
    CpuInfo,
    Environment,
    TorchInfo,
    capture_environment,
    compared_values,
    cpu_model,
    fingerprint_differences,
    host_id,
    package_versions,
)
from qeval.results import to_dict

BACKENDS = ("torchao", "optimum.quanto", "bitsandbytes", "hqq", "gptqmodel")


@pytest.fixture(scope="module")
def cpu_fp():
    before = {name for name in BACKENDS if name in sys.modules}
    fp = capture_environment("cpu")
    after = {name for name in BACKENDS if name in sys.modules}
    return fp, after - before


def test_fingerprint_fields_and_types(cpu_fp):
    fp, _ = cpu_fp
    assert isinstance(fp, Environment)
    assert fp.device == "cpu"
    assert fp.python is not None and fp.python.count(".") == 2
    assert isinstance(fp.platform, str)
    for name in ("torch", "transformers", "torchao", "optimum-quanto", "bitsandbytes", "hqq", "numpy"):
        assert isinstance(fp.packages[name], str) and fp.packages[name], name
    assert fp.packages["numpy"] != NOT_INSTALLED
    assert isinstance(fp.cpu.model, str) and fp.cpu.model
    assert fp.device_name == fp.cpu.model
    assert isinstance(fp.cpu.logical_cores, int)
    assert fp.cuda is None
    if fp.torch.available:
        assert isinstance(fp.torch.threads, int) and fp.torch.threads >= 1
    json.dumps(to_dict(fp), allow_nan=False)  # JSON-ready through to_dict


def test_fingerprint_imports_no_backend(cpu_fp):
    _, newly_imported = cpu_fp
    assert newly_imported == set()


def test_hostname_is_not_recorded(cpu_fp):
    fp, _ = cpu_fp
    name = socket.gethostname()
    if len(name) >= 4:
        assert name not in json.dumps(to_dict(fp))
    assert fp.host_id == host_id() and len(fp.host_id) == 12


def test_missing_package_is_not_installed():
    assert package_versions(("qeval-no-such-distribution",)) == {"qeval-no-such-distribution": NOT_INSTALLED}


def test_cpu_model_from_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 9654 96-Core Processor\n")
    assert cpu_model(info) == "AMD EPYC 9654 96-Core Processor"
    assert isinstance(cpu_model(tmp_path / "absent"), str)


def test_cuda_device_without_cuda_does_not_raise():
    torch = pytest.importorskip("torch")
    fp = capture_environment("cuda")
    assert fp.cuda is not None
    if torch.cuda.is_available():
        assert fp.cuda.available is True
        assert fp.cuda.name == fp.device_name
        assert fp.cuda.capability is not None and "." in fp.cuda.capability
    else:
        assert fp.cuda.available is False and fp.cuda.name is None


def test_fingerprint_differences():
    a = Environment(device="cpu", packages={"torch": "2.13.0", "numpy": "2.4"}, cpu=CpuInfo(model="EPYC"),
                    torch=TorchInfo(available=True, threads=2))
    b = Environment(device="cpu", packages={"torch": "2.12.1", "numpy": "2.4"}, cpu=CpuInfo(model="EPYC"),
                    torch=TorchInfo(available=True, threads=4))
    assert fingerprint_differences(a, a) == []
    assert fingerprint_differences(a, b) == ["packages.torch: 2.13.0 != 2.12.1", "torch.threads: 2 != 4"]


def test_a_package_only_one_run_records_differs():
    a = Environment(packages={"torch": "2.13.0"})
    b = Environment(packages={"torch": "2.13.0", "hqq": "0.2"})
    assert fingerprint_differences(a, b) == ["packages.hqq: None != 0.2"]


def test_compared_values_name_where_each_value_sits():
    env = Environment(device="cpu", packages={"torch": "2.13.0"}, cpu=CpuInfo(model="EPYC", usable_cores=8),
                      torch=TorchInfo(threads=8), host_id="abc")
    assert compared_values(env) == {
        "device": "cpu", "packages.torch": "2.13.0", "cpu.model": "EPYC", "cpu.usable_cores": 8,
        "torch.threads": 8, "cuda.name": None, "cuda.capability": None, "host_id": "abc",
    }


def test_a_cpu_fingerprint_reuses_an_earlier_torch_probe(tmp_path, monkeypatch):
    from qeval import environment

    probe = {"available": True, "threads": 7, "interop_threads": 3, "cuda_build": None}
    key = environment._torch_probe_key("cpu")
    (tmp_path / f"torch-probe-{key}.json").write_text(json.dumps(probe))
    monkeypatch.delitem(sys.modules, "torch")  # as in a process that has not imported it
    fp = capture_environment("cpu", torch_probe_dir=tmp_path)
    assert fp.torch.threads == 7 and fp.torch.interop_threads == 3
    assert fp.torch.probed is not None and fp.torch.probed.startswith("earlier run")
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
    assert capture_environment("cpu", torch_probe_dir=tmp_path).torch.threads == torch.get_num_threads()


def test_a_damaged_torch_probe_is_not_used(tmp_path):
    from qeval import environment

    path = tmp_path / "torch-probe.json"
    for text in ("[1]", '{"threads": "7"}', '{"threads": true}', "{"):
        path.write_text(text)
        assert environment._read_probe(path) is None
    path.write_text('{"threads": 7, "colour": "red"}')  # a key this qeval does not know is dropped
    assert environment._read_probe(path) == TorchInfo(threads=7)


def test_cpu_only_torch_reads_the_build_without_importing_it():
    import torch

    from qeval.models import cpu_only_torch

    assert cpu_only_torch() == (torch.version.cuda is None and torch.version.hip is None)
