"""Leader election as a decision: may this operator replica take (or keep) the Lease?"""

from __future__ import annotations

from datetime import datetime, timedelta


def may_lead(
    *, holder: str | None, renewed: datetime | None, duration_seconds: int, identity: str, now: datetime
) -> bool:
    """True when the Lease is ours, unheld, or its holder stopped renewing it ``duration_seconds`` ago.

    ``duration_seconds`` is the duration the holder wrote into the Lease (its promise), not ours.
    """
    if not holder or holder == identity:
        return True
    if renewed is None:
        return True
    return now >= renewed + timedelta(seconds=duration_seconds)
