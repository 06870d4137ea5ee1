"""Run ids: ``20261123T030447Z-3fa2c1``, sortable by time, unique by a random suffix.

Its own module so that naming a run (the pytest plugin does at start-up) imports
nothing heavy.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timezone


def new_run_id(now: datetime | None = None) -> str:
    now = now or datetime.now(timezone.utc)
    return f"{now.strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(3)}"
