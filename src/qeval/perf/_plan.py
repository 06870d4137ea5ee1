"""The interleaved order of a load profile's blocks. Pure.

Within each round the batch sizes go in the order given; within each batch size
the precisions alternate direction round by round (ABBA: round 0 A,B,C; round 1
C,B,A; ...), so slow drift of the machine (thermal, other tenants) hits every
precision alike instead of favouring the one that always runs first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Block:
    """One precision at one batch size in one round."""

    round: int
    precision: str
    batch_size: int

    @property
    def label(self) -> str:
        """``"round/precision/batch"``, as recorded in ``PerfRecord.order``."""
        return f"{self.round}/{self.precision}/{self.batch_size}"


def abba_order(precisions: Sequence[str], batch_sizes: Sequence[int], rounds: int) -> list[Block]:
    """Every block of the profile in the order it runs."""
    blocks: list[Block] = []
    for r in range(rounds):
        for b in batch_sizes:
            names = precisions if r % 2 == 0 else list(reversed(precisions))
            blocks.extend(Block(r, p, b) for p in names)
    return blocks
