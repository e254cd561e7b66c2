"""The export at the end of a run: one ready group's ranks each write their slices, its rank 0 finishes it.

The driver calls :func:`export_group` once training is done (``DriverOptions.export_dir`` set);
which group exports is :func:`decide_export_group`, a pure choice. The result (the directory's
path or why it failed) becomes a driver event (``exported`` / ``export_failed``) and
``RunResult.export_path``.
"""

from __future__ import annotations

from collections.abc import Mapping

import ray
from ray.exceptions import GetTimeoutError, RayActorError, RayTaskError

from elastrain_trainer.driver.calls import EventSink, describe_cause
from elastrain_trainer.driver.groups import GroupHandle

#: Seconds an export may take (writing and consolidating a large model is slow).
EXPORT_TIMEOUT_SECONDS = 3600.0


def decide_export_group(groups: Mapping[str, GroupHandle], *, step: int, total_steps: int) -> str | None:
    """The ready group (first by name) that exports after the last step; None if training did not finish."""
    ready = sorted(g.group_id for g in groups.values() if g.ready)
    if step < total_steps or not ready:
        return None
    return ready[0]


def export_group(
    group: GroupHandle,
    directory: str,
    *,
    step: int,
    event: EventSink,
    timeout_seconds: float = EXPORT_TIMEOUT_SECONDS,
    name: str = "final",
    request: str | None = None,
) -> str | None:
    """Every rank of ``group`` writes its slices of ``<directory>/<name>``; returns its path (None: failed).

    ``request``: the id of an export asked for while training (events ``request_exported`` /
    ``request_export_failed`` with ``request=``), else the final export (``exported`` / ``export_failed``).
    """
    done, failed = ("exported", "export_failed") if request is None else ("request_exported", "request_export_failed")
    extra = {} if request is None else {"request": request}
    group.release()  # every rank is called: its followers leave their follow call first (mid-run)
    try:
        paths = ray.get([actor.export.remote(directory, name) for actor in group.actors], timeout=timeout_seconds)
    except (RayActorError, RayTaskError, GetTimeoutError) as err:
        event(failed, group=group.group_id, step=step, error=describe_cause(err), **extra)
        return None
    path = next((p for p in paths if p is not None), None)
    if path is None:
        event(failed, group=group.group_id, step=step, error="no rank wrote the export", **extra)
        return None
    event(done, group=group.group_id, step=step, path=str(path), **extra)
    return str(path)
