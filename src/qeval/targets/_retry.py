"""When to retry a failed request, and how long to wait first. Pure: no clock, no sleeping.

Exponential backoff with *full jitter* (a uniform draw in ``[0, base * 2**(k-2)]``)
spreads the retries of many concurrent clients instead of having them hit a
recovering server in lock-step. A server's ``Retry-After`` overrides the draw:
it knows when it will have room.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass
from datetime import timezone
from email.utils import parsedate_to_datetime

from qeval.errors import UsageError

_SECONDS = re.compile(r"\d+(\.\d+)?")
_MAX_EXPONENT = 60  # base * 2**60 is past any sane cap; stops an int->float overflow for huge k


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long a request is retried.

    ``max_attempts``: attempts in all, the first included (1 = never retry).
    ``base_s``: the backoff cap before the second attempt; it doubles per attempt.
    ``max_wait_s``: the longest single wait. A ``Retry-After`` longer than this gives up.
    ``budget_s``: the most time from the first attempt's start to the start of the last one.
    """

    max_attempts: int = 4
    base_s: float = 0.5
    max_wait_s: float = 20.0
    budget_s: float = 60.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise UsageError(f"RetryPolicy.max_attempts must be >= 1, got {self.max_attempts}")
        for name in ("base_s", "max_wait_s", "budget_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise UsageError(f"RetryPolicy.{name} must be a finite number >= 0, got {value!r}")

    def wait_s(
        self,
        attempt: int,
        retry_after: str | None,
        rng: random.Random,
        elapsed_s: float,
        *,
        now_epoch_s: float | None = None,
    ) -> float | None:
        """Seconds to wait before attempt number ``attempt`` (1-based), or None to give up.

        ``retry_after``: the failed response's ``Retry-After`` header, if any.
        ``elapsed_s``: time since the first attempt started (waits included).
        ``now_epoch_s``: the wall clock, needed only for an HTTP-date ``Retry-After``;
        without it such a header is ignored (kept out so that this stays pure).
        Gives up when ``attempt`` exceeds ``max_attempts``, when the budget is spent, or
        when the server asks for a wait longer than ``max_wait_s`` or than what is left
        of the budget. A drawn wait is cut to what is left of the budget.
        """
        if attempt <= 1:
            return 0.0
        if attempt > self.max_attempts:
            return None
        left_s = self.budget_s - elapsed_s
        if left_s <= 0:
            return None
        asked_s = parse_retry_after(retry_after, now_epoch_s) if retry_after is not None else None
        if asked_s is not None:
            if asked_s > self.max_wait_s or asked_s > left_s:
                return None  # retrying sooner than the server asked would only be refused again
            return asked_s
        cap_s = min(self.max_wait_s, self.base_s * 2.0 ** min(attempt - 2, _MAX_EXPONENT))
        return min(rng.uniform(0.0, cap_s), left_s)


def parse_retry_after(value: str, now_epoch_s: float | None) -> float | None:
    """Seconds asked for by a ``Retry-After`` value (delay-seconds or HTTP-date); None if unreadable.

    An HTTP-date needs ``now_epoch_s``; a date in the past means 0.
    """
    text = value.strip()
    if _SECONDS.fullmatch(text):
        return float(text)
    if now_epoch_s is None:
        return None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; a zone-less one is read as UTC
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, when.timestamp() - now_epoch_s)
