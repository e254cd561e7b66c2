"""The driver's events as they happen, one log line each: what ``kubectl logs`` on the head shows.

Every event the driver records (:meth:`~elastrain_trainer.driver.loop.Driver.event`) is also a
line in the ``elastrain.driver`` log at once, so a job that struggles says so while it runs, not
only in the run summary written when it ends. :func:`describe_event` words each kind (the docs'
troubleshooting page lists them); :class:`LogRateLimit` keeps a crash loop from flooding the log
(past ``burst`` lines of one kind within ``window`` seconds, the rest are counted and the count
is said on the next line let through). A traceback is logged once per distinct error.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from elastrain_trainer.config.progress import MAX_WARNINGS

log = logging.getLogger("elastrain.driver")

#: Kinds logged as warnings (something is wrong but training may go on) and as errors (the driver stops).
WARNING_KINDS = frozenset(
    {
        "group_lost",
        "group_hung",
        "quorum_timeout",
        "quorum_abandoned",
        "train_timeout",
        "state_lost",
        "restart_from_scratch",
        "checkpoint_skipped",
        "final_checkpoint_failed",
        "checkpoint_failed",
        "group_failing",
        "data_warning",
    }
)
ERROR_KINDS = frozenset({"setup_given_up", "steps_given_up", "checkpoints_given_up"})


def _node(node: object) -> str:
    text = str(node)
    return text[:12] if len(text) > 16 else text  # Ray node ids are 56 hex digits: a prefix tells them apart


def describe_event(kind: str, data: Mapping[str, Any]) -> str:
    """One line for an event (without its kind's level); unknown kinds list their data."""
    g = data.get("group", "")
    step = data.get("step")
    at = f" at step {step}" if step is not None else ""
    match kind:
        case "group_started":
            resume = data.get("resume_step")
            whence = f", resuming from the checkpoint of step {resume}" if resume is not None else ""
            return f"group started: {g} on node {_node(data.get('node'))}{whence}"
        case "group_ready":
            return f"group ready: {g} after {float(data.get('setup_seconds', 0.0)):.1f} s of set-up"
        case "group_healed":
            return f"group healed: {g} from a live peer in {float(data.get('heal_seconds', 0.0)):.2f} s{at}"
        case "group_lost":
            during = data.get("during_step")
            when = f" during step {during}" if during is not None else at
            return f"group lost: {g}{when}: {data.get('reason', '')}"
        case "group_hung":
            node = f" on node {_node(data['node'])}" if data.get("node") else ""
            answer = "quorum answer" if data.get("phase") == "quorum" else "step result"
            return (
                f"group hung: {g}{node}{at}: no {answer} after "
                f"{float(data.get('waited_seconds', 0.0)):.1f} s "
                f"(watchdog bound {float(data.get('bound_seconds', 0.0)):.1f} s); fencing it"
            )
        case "group_failing":
            return (
                f"group failing: node {_node(data.get('node'))} lost {data.get('losses')} groups in a row "
                f"(last: {data.get('reason', '')}); training goes on without its share"
            )
        case "group_left":
            return f"group left: {g} at step {step}, its pod asked to leave (scale-down)"
        case "leave_settled":
            return (
                f"leave settled: {', '.join(data.get('groups', []))} gone; the others paused "
                f"{float(data.get('pause_seconds', 0.0)):.2f} s between steps{at}"
            )
        case "quorum_timeout":
            return f"quorum timeout{at}: answered {data.get('answered')}, still waiting for {data.get('waiting')}"
        case "quorum_abandoned":
            return f"quorum abandoned{at}: a member died after joining; answered {data.get('answered')}"
        case "train_timeout":
            return f"step timeout{at}: no result from {data.get('waiting')}; losing them"
        case "checkpoint":
            return f"checkpoint: step {data.get('checkpoint_step')} saved by {g}"
        case "data_checked":
            return str(data.get("report", "data checked"))
        case "data_warning":
            return f"data warning: {data.get('message', '')}"
        case "checkpoint_failed":
            return str(data.get("message", f"checkpoint of step {data.get('checkpoint_step')} failed"))
        case "setup_given_up" | "steps_given_up" | "checkpoints_given_up":
            return f"giving up: {data.get('message', '')}"
    details = ", ".join(f"{k} {v}" for k, v in data.items() if k not in ("time", "kind"))
    return f"{kind.replace('_', ' ')}: {details}"


def warnings_of(events: Iterable[Mapping[str, Any]]) -> list[str]:
    """The warnings for the progress report (and so Events): data that repeats, a failing node, a hung group;
    oldest first."""
    kinds = ("data_warning", "group_failing", "group_hung")
    found = [describe_event(str(e["kind"]), e) for e in events if e["kind"] in kinds]
    return list(dict.fromkeys(found))[:MAX_WARNINGS]


def event_level(kind: str) -> int:
    if kind in ERROR_KINDS:
        return logging.ERROR
    if kind in WARNING_KINDS:
        return logging.WARNING
    return logging.INFO


@dataclass
class LogRateLimit:
    """At most ``burst`` lines per kind within ``window`` seconds; the rest are counted, not logged."""

    burst: int = 20
    window: float = 60.0
    _times: dict[str, list[float]] = field(default_factory=dict)
    _suppressed: dict[str, int] = field(default_factory=dict)

    def admit(self, kind: str, now: float) -> int | None:
        """None to drop this line; else the lines of this kind dropped since the last one let through."""
        times = [t for t in self._times.get(kind, []) if now - t < self.window]
        if len(times) >= self.burst:
            self._times[kind] = times
            self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
            return None
        times.append(now)
        self._times[kind] = times
        return self._suppressed.pop(kind, 0)


@dataclass
class StoryLog:
    """Logs the driver's events as they are recorded, rate-limited, each distinct traceback once."""

    limit: LogRateLimit = field(default_factory=LogRateLimit)
    logger: logging.Logger = log
    _tracebacks: set[str] = field(default_factory=set)

    def record(self, kind: str, data: Mapping[str, Any], *, now: float) -> None:
        dropped = self.limit.admit(kind, now)
        if dropped is None:
            return
        line = describe_event(kind, data)
        if dropped:
            line += f" ({dropped} more {kind.replace('_', ' ')} line(s) not logged)"
        self.logger.log(event_level(kind), "%s", line)

    def traceback(self, cause: str, text: str) -> None:
        """The full traceback of an error the first time its ``Type: first line`` is seen."""
        if cause in self._tracebacks:
            return
        self._tracebacks.add(cause)
        self.logger.warning("traceback of %s (logged once):\n%s", cause, text)
