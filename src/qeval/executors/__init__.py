"""Where a sweep's units of work run: in this process, one after another, or as tasks on a Ray
cluster. Both take :class:`qeval.cell.Unit` records and give back :class:`qeval.cell.UnitResult`
records as each unit finishes; the sweep journals and reports them the same way."""

from qeval.executors._base import EXECUTORS, Executor, ExecutorError, check_executor
from qeval.executors._local import LocalExecutor
from qeval.executors._ray import RayExecutor, ray_missing

__all__ = ["EXECUTORS", "Executor", "ExecutorError", "LocalExecutor", "RayExecutor", "check_executor", "ray_missing"]
