"""What each condition and Event reason means to a user: where it shows, what happened, what to do.

The troubleshooting table in docs/operations.md is generated from ``REASON_DOCS`` (``make crds``);
a unit test fails when a ``Reason`` has no entry or the page is stale. ``RESIZE_REASONS`` are the
only reasons ``status.resizes[].reason`` ever holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from elastrain_operator.api.constants import Reason

#: The reasons of ``status.resizes`` entries (and of the ``elastrain_resizes_total`` metric).
RESIZE_REASONS: Final = (Reason.SCALED_UP, Reason.SCALED_DOWN, Reason.WORKER_LOST, Reason.WORKER_HUNG)


@dataclass(frozen=True)
class ReasonDoc:
    """One row of the troubleshooting table."""

    where: str
    """Where the reason shows: conditions, phases, Events, ``status.resizes``."""
    meaning: str
    """What happened."""
    action: str
    """What the user does about it ("-" for nothing)."""


REASON_DOCS: Final[dict[Reason, ReasonDoc]] = {
    Reason.CREATED: ReasonDoc(
        "`Created`, phase `Pending`",
        "pods are being created, scheduled or started",
        "wait; if it lasts, `kubectl get pods -l elastrain.dev/job=NAME` and `kubectl describe pod`",
    ),
    Reason.UNSCHEDULABLE: ReasonDoc(
        "phase `Pending`, `ScaleUpBlocked`",
        "the scheduler cannot place a pod; the message is the scheduler's",
        "free or add capacity, check `acceleratorsPerWorker` against the nodes' `nvidia.com/gpu`, "
        "`spec.scheduling` selectors and tolerations, quotas",
    ),
    Reason.WORKERS_READY: ReasonDoc(
        "`Running`",
        "the head runs and `replicas` workers are ready",
        "-",
    ),
    Reason.SCALED_UP: ReasonDoc(
        "`Rescaling`, `status.resizes`",
        "`spec.replicas` went up, or workers came back; with `spec.elastic` the job trains on while the "
        "new workers start (without it, a scale up waits in `Pending`, `BelowMinReplicas`, until they are ready)",
        "wait for the new workers; `ScaleUpBlocked` says if they cannot be placed",
    ),
    Reason.SCALED_DOWN: ReasonDoc(
        "`Rescaling`, `status.resizes`",
        "`spec.replicas` went down; the highest indices leave at a step boundary, then are deleted, "
        "and the others train on",
        "-",
    ),
    Reason.LEAVE_TIMED_OUT: ReasonDoc(
        "Event",
        "on a scale-down the driver did not confirm within `elastic.leaveTimeoutSeconds` that the leaving "
        "pods' groups left; they were deleted anyway",
        "the head's log (a stuck or busy driver); raise `leaveTimeoutSeconds`",
    ),
    Reason.WORKER_LOST: ReasonDoc(
        "Event, `status.resizes`",
        "a worker pod failed for an infrastructure reason (eviction, preemption, OOM kill, signal) or was "
        "lost with its node (NotReady or deleted); it is replaced while the other workers keep training; "
        "not counted against `backoffLimit`",
        "nothing, unless it repeats: check the nodes and `kubectl describe pod`; the replacement waits for capacity",
    ),
    Reason.WORKER_HUNG: ReasonDoc(
        "`status.resizes`, `status.workers.unhealthy`",
        "a worker's step did not finish within the step watchdog's bound (`spec.faultTolerance`: hangFactor x "
        "the other workers' median step time, at least hangFloorSeconds) while the others finished theirs: "
        "the driver fenced its replica group (killed its processes) and restarts it in the same pod; the pod "
        "stays Running but is out of READY until the new group trains; the head's log says `group hung`",
        "nothing, unless it repeats: check the pod's node (GPU, NCCL, kernel); raise `faultTolerance.hangFactor` "
        "or `hangFloorSeconds` if its steps are legitimately slow",
    ),
    Reason.NODE_LOST: ReasonDoc(
        "Event",
        "the **head** pod's node went NotReady or was deleted: every pod is recreated and training restarts "
        "from the last checkpoint (`status.restarts.infrastructure` goes up); a worker's node loss is "
        "`WorkerLost`",
        "check the node; keep the head off preemptible nodes; configure `spec.checkpoint`",
    ),
    Reason.BELOW_MIN_REPLICAS: ReasonDoc(
        "phase `Rescaling` (within `elastic.belowMinGraceSeconds`), then `Pending`",
        "fewer ready workers than the minimum (`elastic.minReplicas`, or `replicas` without `elastic`); "
        "the job waits rather than fails",
        "restore capacity, or lower `minReplicas`",
    ),
    Reason.SUSPENDED: ReasonDoc(
        "`Suspended`",
        "`runPolicy.suspend` is true; no pods",
        "set it to false to resume",
    ),
    Reason.RESUMED: ReasonDoc(
        "Event",
        "`runPolicy.suspend` went back to false; pods recreated",
        "-",
    ),
    Reason.SUCCEEDED: ReasonDoc(
        "`Succeeded`",
        "the driver completed",
        "the job is deleted after `ttlSecondsAfterFinished`, if set",
    ),
    Reason.APPLICATION_ERROR: ReasonDoc(
        "`Failed`, Event",
        "the trainer exited 1-127: retried and counted, or final by `restartPolicy`; the message quotes the "
        "pod's last words (what the trainer wrote to its termination log, e.g. `trainer: spec.trainer.data.path: "
        "no such file in the pod (value: /data/t.bin); mount it ...`, or the last line of its log if it crashed "
        "before it could)",
        "read the quoted error; for more, `kubectl logs NAME-head` (kept until the TTL); fix and create a new "
        "job; list transient codes in `retryableExitCodes`",
    ),
    Reason.TRAINER_WARNING: ReasonDoc(
        "Event, `status.progress.warnings`",
        "the driver warns while training goes on: the data holds fewer samples than `steps x globalBatchSize` "
        "and repeats (`the data repeats N times (epochs)`), or a node's groups were lost 3 times in a row "
        "(`group failing: node ...`)",
        "check the data file is complete; for a failing node, its pod's log and `kubectl describe pod`",
    ),
    Reason.CHECKPOINT_SAVE_FAILED: ReasonDoc(
        "`CheckpointsFailing`, Event (one per distinct cause)",
        "a checkpoint save failed (full volume, quota, read-only, I/O or permission error; the message names it, "
        "e.g. `no space left on device at file:///ckpt (0 bytes free, 1.7 MB needed; skipped before writing)`); "
        "training goes on, the save's partial files are removed, the CHECKPOINT column and `latest` keep the last "
        "complete checkpoint and the next scheduled save tries again",
        "free space or fix the volume (the condition clears after the next save succeeds); "
        "`spec.checkpoint.maxConsecutiveFailures` fails the job instead after that many failures in a row",
    ),
    Reason.CHECKPOINT_SAVED: ReasonDoc(
        "`CheckpointsFailing` (False), Event",
        "a checkpoint save succeeded after saves had failed",
        "-",
    ),
    Reason.EXPORTED_ON_REQUEST: ReasonDoc(
        "Event, `status.exportRequest`",
        "an export asked for with the `elastrain.dev/export-request` annotation was written at a step boundary "
        "to `<export location>/step-<N>`; training went on",
        "-",
    ),
    Reason.EXPORT_REQUEST_FAILED: ReasonDoc(
        "Event, `status.exportRequest`",
        "an export asked for while training failed (the message says why); training went on",
        "fix the export location (room, permissions) and annotate again with a new id",
    ),
    Reason.EXPORT_REQUEST_REFUSED: ReasonDoc(
        "Event, `status.exportRequest`",
        "an export was asked for with the `elastrain.dev/export-request` annotation, but the job has no "
        "`spec.export` (or the id is not valid)",
        "set `spec.export` (uri or pvc) when creating the job; ids are 1-128 characters without spaces",
    ),
    Reason.BACKOFF_LIMIT_EXCEEDED: ReasonDoc(
        "`Failed`",
        "more retried application failures than `backoffLimit`",
        "the Events name each failed pod and exit code; read their logs",
    ),
    Reason.DEADLINE_EXCEEDED: ReasonDoc(
        "`Failed`",
        "`activeDeadlineSeconds` passed since `startTime`",
        "raise the deadline; suspended time does not count",
    ),
    Reason.INVALID_SPEC: ReasonDoc(
        "`Failed`, Event",
        "the operator's parser, or the API server creating a pod or Service, refused the spec; the message "
        "names the object and field",
        "fix the manifest and create a new job; see [operator.md](operator.md#invalid-specs)",
    ),
}


def render_reason_table() -> str:
    """The Markdown troubleshooting table, one row per reason in the enum's order."""
    lines = ["| reason | where | meaning | what to do |", "| --- | --- | --- | --- |"]
    for reason in Reason:
        doc = REASON_DOCS[reason]
        lines.append(f"| `{reason.value}` | {doc.where} | {doc.meaning} | {doc.action} |")
    return "\n".join(lines) + "\n"
