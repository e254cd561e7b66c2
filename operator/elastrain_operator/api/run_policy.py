"""Lifetime of a job: retries, deadlines, clean-up and suspension."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from elastrain_trainer.config import ConfigModel, Rule

RestartPolicy = Literal["ExitCode", "OnFailure", "Never"]
ExitCode = Annotated[int, Field(ge=1, le=127)]


class RunPolicy(ConfigModel):
    """Retries, deadlines, clean-up after completion and suspension.

    Infrastructure loss (eviction, preemption, a node gone, exit codes 128 and above) never
    counts against backoffLimit; application failures do.
    """

    backoff_limit: int = Field(3, ge=0, le=100)
    """Application failures tolerated before the job fails; each one restarts training from the last checkpoint."""
    active_deadline_seconds: int | None = Field(None, ge=1)
    """Seconds the job may run (suspended time excluded) before it fails with DeadlineExceeded; unset: no limit."""
    ttl_seconds_after_finished: int | None = Field(None, ge=0)
    """Delete the job this many seconds after it succeeded or failed; unset: keep it."""
    suspend: bool = False
    """Stop all pods after a checkpoint and keep the job; setting it back to false resumes from that checkpoint."""
    restart_policy: RestartPolicy = "ExitCode"
    """When a failed trainer is restarted. ExitCode: exit codes 1-127 are permanent application errors
    (the job fails) unless listed in retryableExitCodes, 128 and above (signals, OOM kill) are retried;
    OnFailure: every failure is retried within backoffLimit; Never: the first application failure fails the job."""
    retryable_exit_codes: list[ExitCode] | None = Field(None, max_length=32)
    """Exit codes below 128 that are retried under restartPolicy ExitCode (each 1-127)."""

    rules = (
        Rule(
            cel="!has(self.retryableExitCodes) || self.restartPolicy == 'ExitCode'",
            holds=lambda r: r.retryable_exit_codes is None or r.restart_policy == "ExitCode",
            field="retryableExitCodes",
            message="retryableExitCodes is read only with restartPolicy ExitCode; "
            "remove it or set restartPolicy: ExitCode",
            shows=("restartPolicy",),
        ),
    )
