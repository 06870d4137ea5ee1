"""The environment fingerprint recorded in every report.

Two runs are comparable only on the same hardware and library versions;
:func:`fingerprint_differences` names what differs. Versions are read from
package metadata, so optional backends (torchao, quanto, bitsandbytes, hqq,
gptqmodel) are never imported here. The hostname is recorded only as a short
hash: enough to tell "same machine?" without naming it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import platform
import socket
import subprocess
import sys
from dataclasses import replace
from importlib import metadata
from pathlib import Path
from typing import Any

from qeval._environment_record import (
    CpuInfo,
    CudaInfo,
    Environment,
    TorchInfo,
    compared_rows,
    compared_values,
    fingerprint_differences,
)

__all__ = [
    "NOT_INSTALLED",
    "PACKAGES",
    "THREAD_ENV_VARS",
    "CpuInfo",
    "CudaInfo",
    "Environment",
    "TorchInfo",
    "capture_environment",
    "compared_rows",
    "compared_values",
    "cpu_model",
    "fingerprint_differences",
    "host_id",
    "package_versions",
]

NOT_INSTALLED = "not installed"

PACKAGES: tuple[str, ...] = (
    "qeval",
    "torch",
    "transformers",
    "accelerate",
    "torchao",
    "optimum-quanto",
    "bitsandbytes",
    "hqq",
    "gptqmodel",
    "numpy",
    "scipy",
)
"""Distributions whose versions are recorded (``"not installed"`` when absent)."""

THREAD_ENV_VARS: tuple[str, ...] = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "CUDA_VISIBLE_DEVICES",
    "GPTQMODEL_CPU_WORKERS",
)
"""Environment variables that change performance; recorded when set."""

def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    """``{distribution: version}`` from installed metadata, without importing anything."""
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = NOT_INSTALLED
        except Exception as exc:  # noqa: BLE001 - a broken install must not break a report
            versions[name] = f"unknown ({type(exc).__name__})"
    return versions


def cpu_model(cpuinfo: str | Path = "/proc/cpuinfo") -> str:
    """The CPU model name (``/proc/cpuinfo`` on Linux, ``platform.processor()`` elsewhere)."""
    try:
        for line in Path(cpuinfo).read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip().lower() in ("model name", "hardware", "cpu model") and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _usable_cores() -> int | None:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count()


def _memory_total_bytes(meminfo: str | Path = "/proc/meminfo") -> int | None:
    try:
        for line in Path(meminfo).read_text(encoding="utf-8").splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def host_id() -> str:
    """First 12 hex digits of the SHA-256 of the hostname (the name itself is never recorded)."""
    try:
        name = socket.gethostname()
    except OSError:
        return "unknown"
    return hashlib.sha256(name.encode("utf-8", errors="replace")).hexdigest()[:12]


def _torch_info(device: str) -> tuple[TorchInfo, CudaInfo | None]:
    """torch threads/build, and the CUDA block when ``device`` is CUDA (``None`` otherwise)."""
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
    else:
        try:
            import torch  # noqa: PLC0415 - heavy, and only needed here
        except Exception:  # noqa: BLE001 - absent or broken torch: record that and go on
            return TorchInfo(available=False), _cuda_info(None, device)
    threads = interop = None
    try:
        threads = int(torch.get_num_threads())
        interop = int(torch.get_num_interop_threads())
    except Exception:  # noqa: BLE001
        pass
    cuda_build = getattr(getattr(torch, "version", None), "cuda", None)
    info = TorchInfo(available=True, threads=threads, interop_threads=interop, cuda_build=cuda_build)
    return info, _cuda_info(torch, device)


def _cuda_info(torch: Any, device: str) -> CudaInfo | None:
    if not device.startswith("cuda"):
        return None
    cuda = CudaInfo(available=False)
    try:
        if torch is not None and torch.cuda.is_available():
            index = torch.device(device).index
            index = torch.cuda.current_device() if index is None else index
            major, minor = torch.cuda.get_device_capability(index)
            props = torch.cuda.get_device_properties(index)
            cuda = CudaInfo(
                available=True,
                name=torch.cuda.get_device_name(index),
                capability=f"{major}.{minor}",
                memory_bytes=int(props.total_memory),
                device_count=int(torch.cuda.device_count()),
                runtime=getattr(torch.version, "cuda", None),
            )
    except Exception as exc:  # noqa: BLE001 - a fingerprint never raises
        cuda = replace(cuda, error=f"{type(exc).__name__}: {exc}")
    return replace(cuda, driver=_nvidia_driver())


def _nvidia_driver() -> str | None:
    try:
        text = Path("/proc/driver/nvidia/version").read_text(encoding="utf-8")
        for token in text.split():
            if token.count(".") >= 1 and token.replace(".", "").isdigit():
                return token
    except OSError:
        pass
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=10, check=False,
        )
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip().splitlines()[0].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return None


def _load_average() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def _torch_probe_key(device: str) -> str:
    """Everything torch's default thread count depends on when nothing in the process set it."""
    parts = {
        "device": device,
        "python": sys.executable,
        "torch": package_versions(("torch",)),
        "env": {k: os.environ.get(k) for k in THREAD_ENV_VARS},
        "cores": [os.cpu_count(), _usable_cores()],
        "cpu": cpu_model(),
        "host": host_id(),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:20]


def _torch_info_cached(device: str, probe_dir: Path) -> tuple[TorchInfo, CudaInfo | None]:
    """:func:`_torch_info` without importing torch (~2 s) when an earlier process on this
    machine, with the same torch, interpreter and thread variables, recorded it in ``probe_dir``.

    Only on CPU and only while torch is not imported: then no code in this process can have
    changed its thread count, so the earlier probe is what torch would answer now.
    """
    if device != "cpu" or "torch" in sys.modules:
        return _torch_info(device)
    path = Path(probe_dir) / f"torch-probe-{_torch_probe_key(device)}.json"
    stored = _read_probe(path)
    if stored is not None:
        return replace(stored, probed="earlier run (torch not imported in this one)"), None
    info, cuda = _torch_info(device)
    if info.threads is not None:
        from qeval.errors import QevalError
        from qeval.files import atomic_write_text

        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(path, json.dumps(dataclasses.asdict(info)))
        except (OSError, QevalError):
            pass  # no probe stored: the next run imports torch again
    return info, cuda


def _read_probe(path: Path) -> TorchInfo | None:
    """The :class:`TorchInfo` an earlier process stored at ``path`` (``None`` when absent or unusable)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    try:
        info = TorchInfo(**{f.name: data[f.name] for f in dataclasses.fields(TorchInfo) if f.name in data})
    except TypeError:
        return None
    return info if isinstance(info.threads, int) and not isinstance(info.threads, bool) else None


def capture_environment(device: str, torch_probe_dir: str | Path | None = None) -> Environment:
    """What a report must record about the machine and libraries. Never raises.

    ``device`` is the resolved device the run used (``"cpu"``, ``"cuda"``, ``"cuda:1"``).
    With ``torch_probe_dir`` (a cache folder) a CPU fingerprint reuses an earlier process's
    torch thread count instead of importing torch (see :func:`_torch_info_cached`).
    """
    if torch_probe_dir is None:
        torch_info, cuda = _torch_info(device)
    else:
        torch_info, cuda = _torch_info_cached(device, Path(torch_probe_dir))
    cpu_name = cpu_model()
    return Environment(
        device=device,
        device_name=(cuda.name if cuda else None) or cpu_name,
        python=platform.python_version(),
        python_implementation=platform.python_implementation(),
        platform=platform.platform(),
        machine=platform.machine(),
        packages=package_versions(),
        cpu=CpuInfo(
            model=cpu_name,
            logical_cores=os.cpu_count(),
            usable_cores=_usable_cores(),
            load_average_1m=_load_average(),
        ),
        memory_total_bytes=_memory_total_bytes(),
        torch=torch_info,
        cuda=cuda,
        env_vars={k: os.environ[k] for k in THREAD_ENV_VARS if k in os.environ},
        host_id=host_id(),
    )


