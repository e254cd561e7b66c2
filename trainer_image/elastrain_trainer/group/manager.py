"""The group's torchft side: its timeouts, quieter logs, and the Manager that joins the quorum."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from elastrain_trainer.group.messages import GroupAddress


def quiet_torchft_logs() -> None:
    """torchft logs every quorum and commit at INFO; keep warnings only."""
    os.environ.setdefault("RUST_LOG", "warn")
    for name in ("torchft", "torchft_quorums", "torchft_commits", "torchft_errors"):
        logging.getLogger(name).setLevel(logging.WARNING)


@dataclass(frozen=True)
class FaultTimeouts:
    """torchft timeouts of a group."""

    collective_seconds: float = 30.0
    quorum_seconds: float = 120.0
    connect_seconds: float = 30.0


def build_process_group(timeout: timedelta) -> Any:
    """torchft's reconfigurable gloo process group whose collectives take a per-step timeout.

    ``step_timeout`` (seconds, None: the group's ``timeout``) goes into every collective's options: the
    driver's step watchdog sets it per step, so a member waiting for a hung one errors out through
    torchft's error path (the step is not committed) instead of waiting the full collective timeout.
    A gloo abort does not end a pending receive; a per-operation timeout does.
    """
    from torchft import ProcessGroupGloo

    class StepTimeoutGloo(ProcessGroupGloo):  # type: ignore[misc]
        step_timeout: float | None = None

        def _opts_hook(self, opts: Any) -> Any:
            if self.step_timeout is not None and hasattr(opts, "timeout"):
                opts.timeout = timedelta(seconds=self.step_timeout)
            return opts

    return StepTimeoutGloo(timeout=timeout)


def set_step_timeout(manager: Any, seconds: float | None) -> None:
    """This step's cross-group collective timeout (None: the group's own); see :func:`build_process_group`."""
    pg = getattr(manager, "_pg", None)  # torchft keeps the process group it was given here
    if pg is not None and hasattr(pg, "step_timeout"):
        pg.step_timeout = seconds


def build_manager(
    *,
    address: GroupAddress,
    rank: int,
    timeouts: FaultTimeouts,
    advertise_host: str,
    state_dict: Callable[[], dict[str, Any]],
    load_state_dict: Callable[[dict[str, Any]], None],
) -> Any:
    """Start rank ``rank``'s torchft Manager: synchronous quorum (a joining group heals before its first
    forward), cross-group collectives over gloo, any number of groups from one."""
    from torchft import Manager

    timeout = timedelta(seconds=timeouts.collective_seconds)
    return Manager(
        pg=build_process_group(timeout),
        load_state_dict=load_state_dict,
        state_dict=state_dict,
        min_replica_size=1,
        use_async_quorum=False,
        timeout=timeout,
        quorum_timeout=timedelta(seconds=timeouts.quorum_seconds),
        connect_timeout=timedelta(seconds=timeouts.connect_seconds),
        rank=rank,
        world_size=address.world_size,
        store_addr=address.store_host,
        store_port=address.store_port,
        lighthouse_addr=address.lighthouse,
        replica_id=address.group_id,
        hostname=advertise_host,
        init_sync=False,
    )
