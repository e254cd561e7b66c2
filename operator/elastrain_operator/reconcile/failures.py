"""Who is to blame for a pod that stopped: the application (counts against backoffLimit) or the infrastructure."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from elastrain_operator.api import RunPolicy
from elastrain_operator.reconcile.observed import ObservedPod

#: Exit codes from here up mean the process was killed by a signal (128 + n): preemption, OOM kill, node loss.
SIGNAL_EXIT_BASE = 128
#: Pod or container reasons that mean the infrastructure took the pod away.
INFRASTRUCTURE_REASONS = frozenset(
    {
        "Evicted",
        "NodeLost",
        "Preempting",
        "Terminated",
        "Shutdown",
        "NodeShutdown",
        "DeletionByTaintManager",
        "OOMKilled",
    }
)


class Blame(StrEnum):
    APPLICATION = "Application"
    INFRASTRUCTURE = "Infrastructure"


class Verdict(StrEnum):
    """What to do about a failure."""

    RETRY = "Retry"
    """Replace the pod; an application failure also consumes one of backoffLimit."""
    FAIL_JOB = "FailJob"
    """A permanent application error: the job fails now."""


@dataclass(frozen=True)
class Failure:
    pod: ObservedPod
    blame: Blame
    verdict: Verdict
    detail: str


def blame(pod: ObservedPod) -> Blame:
    """Exit codes 1-127 are the application's; signals, evictions and lost nodes are the infrastructure's."""
    if pod.reason in INFRASTRUCTURE_REASONS:
        return Blame.INFRASTRUCTURE
    if pod.exit_code is None or pod.exit_code >= SIGNAL_EXIT_BASE:
        return Blame.INFRASTRUCTURE
    return Blame.APPLICATION


def judge(pod: ObservedPod, policy: RunPolicy) -> Failure:
    """Blame a failed pod and decide, from the run policy, whether its job may retry."""
    who = blame(pod)
    what = f"pod {pod.name} failed"
    what += f" with exit code {pod.exit_code}" if pod.exit_code is not None else ""
    what += f" ({pod.reason})" if pod.reason else ""
    words = last_words(pod.message)
    what += f": {words}" if words else ""
    if who is Blame.INFRASTRUCTURE:
        return Failure(pod, who, Verdict.RETRY, what + "; infrastructure, not counted against backoffLimit")
    code = pod.exit_code
    retry = policy.restart_policy == "OnFailure" or (
        policy.restart_policy == "ExitCode" and code in (policy.retryable_exit_codes or [])
    )
    if retry:
        return Failure(pod, who, Verdict.RETRY, what + "; application error, counted against backoffLimit")
    hint = (
        "restartPolicy Never"
        if policy.restart_policy == "Never"
        else f"exit code {code} is not in runPolicy.retryableExitCodes"
    )
    return Failure(pod, who, Verdict.FAIL_JOB, what + f"; application error, not retried ({hint})")


#: Longest termination message quoted in a condition or Event (the kubelet keeps up to 4096 bytes;
#: kopf cuts an Event message past 1024 characters, and the detail around the quote takes about 150).
MAX_WORDS = 500


def last_words(message: str | None) -> str | None:
    """The line of a termination message worth quoting: its last non-empty one, shortened.

    The trainer writes one line; a container that crashed before it could leaves the tail of its
    log instead, where the last line of a Python traceback names the exception.
    """
    lines = [line.strip() for line in (message or "").splitlines() if line.strip()]
    if not lines:
        return None
    line = lines[-1]
    return line if len(line) <= MAX_WORDS else line[: MAX_WORDS - 1] + "…"


def failed_pods(pods: tuple[ObservedPod, ...]) -> tuple[ObservedPod, ...]:
    return tuple(p for p in pods if p.phase == "Failed" and not p.terminating)
