"""The environment fingerprint as a record, and what decides whether two runs are comparable.

Pure: :func:`qeval.environment.capture_environment` builds an :class:`Environment`;
here it is only compared. Field names are the keys ``results.json`` writes under
``environment`` (schema 2 keeps schema 1's names).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class CpuInfo:
    """The CPU the run used."""

    model: str | None = None
    """``/proc/cpuinfo``'s model name (``platform.processor()`` elsewhere)."""
    logical_cores: int | None = None
    """``os.cpu_count()``."""
    usable_cores: int | None = None
    """Cores this process may run on (its CPU affinity)."""
    load_average_1m: float | None = None
    """1-minute load average when the fingerprint was taken: other work skews every timing."""


@dataclass(frozen=True)
class TorchInfo:
    """torch as the run saw it (versions are in :attr:`Environment.packages`)."""

    available: bool = False
    """Whether torch could be imported."""
    threads: int | None = None
    """``torch.get_num_threads()``: intra-op CPU threads."""
    interop_threads: int | None = None
    """``torch.get_num_interop_threads()``."""
    cuda_build: str | None = None
    """The CUDA version torch was built against (``None`` for a CPU build)."""
    probed: str | None = None
    """Set when the thread counts come from an earlier process's probe (torch not imported in this one)."""


@dataclass(frozen=True)
class CudaInfo:
    """The CUDA device a CUDA run used (present only for ``cuda`` devices)."""

    available: bool = False
    """Whether torch could use CUDA; when not, the fields below are ``None``."""
    name: str | None = None
    capability: str | None = None
    """Compute capability, ``"major.minor"``."""
    memory_bytes: int | None = None
    """Total memory of the device."""
    device_count: int | None = None
    runtime: str | None = None
    """CUDA runtime version torch reports."""
    driver: str | None = None
    """NVIDIA driver version (``/proc/driver/nvidia/version`` or ``nvidia-smi``)."""
    error: str | None = None
    """Why the device could not be queried (``"RuntimeError: ..."``)."""


@dataclass(frozen=True)
class Environment:
    """What a report records about the machine and libraries.

    Two runs' timings are comparable only where :func:`compared_values` agrees. The hostname is
    recorded only as :attr:`host_id`, a short hash."""

    device: str | None = None
    """The resolved device the run used (``"cpu"``, ``"cuda"``, ``"cuda:1"``)."""
    device_name: str | None = None
    """The CUDA device's name, else the CPU model."""
    python: str | None = None
    """Python version (``"3.11.7"``)."""
    python_implementation: str | None = None
    platform: str | None = None
    """``platform.platform()``."""
    machine: str | None = None
    """``platform.machine()`` (``"x86_64"``)."""
    packages: Mapping[str, str] = field(default_factory=dict)
    """Distribution → version (``"not installed"`` when absent); open-ended: one entry per
    distribution in :data:`qeval.environment.PACKAGES` at the time of the run."""
    cpu: CpuInfo = field(default_factory=CpuInfo)
    memory_total_bytes: int | None = None
    """Physical memory of the machine."""
    torch: TorchInfo = field(default_factory=TorchInfo)
    cuda: CudaInfo | None = None
    """``None`` unless the device is CUDA."""
    env_vars: Mapping[str, str] = field(default_factory=dict)
    """The performance-relevant environment variables that were set (name → value); open-ended:
    any of :data:`qeval.environment.THREAD_ENV_VARS`."""
    host_id: str | None = None
    """First 12 hex digits of the SHA-256 of the hostname (never the name itself)."""


def compared_values(env: Environment, packages: Iterable[str] | None = None) -> dict[str, object]:
    """What must match for two runs' timings to be comparable, named by where it sits under
    ``environment`` in ``results.json`` (``"cpu.model"``); packages one by one (``"packages.torch"``,
    for ``packages`` when given, else for every package ``env`` records; ``None`` where not recorded)."""
    cuda = env.cuda or CudaInfo()
    names = sorted(env.packages if packages is None else packages)
    return {
        "device": env.device,
        **{f"packages.{name}": env.packages.get(name) for name in names},
        "cpu.model": env.cpu.model,
        "cpu.usable_cores": env.cpu.usable_cores,
        "torch.threads": env.torch.threads,
        "cuda.name": cuda.name,
        "cuda.capability": cuda.capability,
        "host_id": env.host_id,
    }


def compared_rows(a: Environment, b: Environment) -> list[tuple[str, object, object]]:
    """``(name, a's value, b's value)`` for everything :func:`compared_values` names, packages of either run."""
    packages = set(a.packages) | set(b.packages)
    va, vb = compared_values(a, packages), compared_values(b, packages)
    return [(name, value, vb[name]) for name, value in va.items()]


def fingerprint_differences(a: Environment, b: Environment) -> list[str]:
    """Human-readable differences between two fingerprints (empty when comparable):
    ``"packages.torch: 2.13.0 != 2.12.1"``."""
    return [f"{name}: {x} != {y}" for name, x, y in compared_rows(a, b) if x != y]
