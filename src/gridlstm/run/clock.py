"""The time a study's records write (`queue.json`'s runs, a select stage's ``chosen.json``)
and read back: the machine's clock with its UTC offset, compared as instants. Why:
pre-registration orders a study's runs by these times, and a study may run on machines in
different time zones (a workstation, then a cluster)."""

from __future__ import annotations

import time
from datetime import datetime, timezone


def stamp(seconds: float | None = None) -> str:
    """A record's time, e.g. "2026-11-28 15:00:42+00:00"."""
    when = datetime.fromtimestamp(time.time() if seconds is None else seconds, tz=timezone.utc)
    return when.astimezone().isoformat(sep=" ", timespec="seconds")


def moment(text: str) -> datetime:
    """A record's time as an aware datetime. A time without an offset was written before the
    records kept one, on machines whose clock was UTC: it reads as UTC on every machine."""
    when = datetime.fromisoformat(str(text))
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)
