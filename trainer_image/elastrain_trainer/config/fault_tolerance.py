"""How fast a job gives up on a hung or dead replica group: the step watchdog and torchft's timeouts.

``spec.faultTolerance`` of the TrainingJob; the operator passes it to the head pod, whose driver takes
its step watchdog (:mod:`elastrain_trainer.driver.watchdog`), its lighthouse heartbeat and every
group's torchft timeouts from it.
"""

from __future__ import annotations

from pydantic import Field

from elastrain_trainer.config.base import ConfigModel, Rule


class FaultToleranceConfig(ConfigModel):
    """Hang detection and timeouts. A hung group (its step not finished, its pod still Running) is judged
    by progress: past max(hangFactor x the median step time of the other groups, hangFloorSeconds) it is
    fenced (its processes killed), the others go on without it in about a second, and it is restarted."""

    hang_factor: float = Field(10.0, ge=2.0, le=1000.0)
    """A group whose step takes this many times the median recent step time of the other groups is hung."""
    hang_floor_seconds: float = Field(10.0, ge=1.0, le=3600.0)
    """...but never before this many seconds: the least time a step may take before it is hung."""
    hang_startup_seconds: float = Field(60.0, ge=1.0, le=86400.0)
    """The bound before 20 steps committed (the first steps warm up; there is no pace to compare with yet)."""
    heartbeat_timeout_seconds: float = Field(1.0, ge=0.1, le=60.0)
    """A group whose torchft heartbeat is silent this long leaves the next quorum (a dead or frozen process)."""
    quorum_timeout_seconds: float = Field(120.0, ge=1.0, le=86400.0)
    """Longest wait of a group for a quorum (healing from a live peer included)."""
    collective_timeout_seconds: float = Field(30.0, ge=1.0, le=3600.0)
    """Longest wait of a cross-group collective; after 20 steps each step's is the hang bound when that is shorter."""
    step_timeout_seconds: float = Field(120.0, ge=1.0, le=86400.0)
    """Longest wait of the driver for any group's quorum or step call, whatever the watchdog says (the backstop)."""

    rules = (
        # The schema's minimum does not catch an integer 0 here: the API server compares an integer value
        # with the minimum cut to an integer (0), so the rule says it again, in CEL's doubles.
        Rule(
            cel="self.heartbeatTimeoutSeconds >= 0.1",
            holds=lambda f: f.heartbeat_timeout_seconds >= 0.1,
            field="heartbeatTimeoutSeconds",
            message="faultTolerance.heartbeatTimeoutSeconds must be at least 0.1 (a silent heartbeat is how a "
            "dead group is found); set e.g. 1",
            shows=("heartbeatTimeoutSeconds",),
        ),
        Rule(
            cel="self.hangFloorSeconds <= self.hangStartupSeconds",
            holds=lambda f: f.hang_floor_seconds <= f.hang_startup_seconds,
            field="hangFloorSeconds",
            message="faultTolerance.hangFloorSeconds must not exceed hangStartupSeconds (the start-up bound "
            "is the looser one); lower hangFloorSeconds or raise hangStartupSeconds",
            shows=("hangFloorSeconds", "hangStartupSeconds"),
        ),
        Rule(
            cel="self.hangStartupSeconds < self.stepTimeoutSeconds",
            holds=lambda f: f.hang_startup_seconds < f.step_timeout_seconds,
            field="hangStartupSeconds",
            message="faultTolerance.hangStartupSeconds must be below stepTimeoutSeconds, or the step timeout "
            "ends every hang before the watchdog; lower hangStartupSeconds or raise stepTimeoutSeconds",
            shows=("hangStartupSeconds", "stepTimeoutSeconds"),
        ),
        Rule(
            cel="self.collectiveTimeoutSeconds < self.stepTimeoutSeconds",
            holds=lambda f: f.collective_timeout_seconds < f.step_timeout_seconds,
            field="collectiveTimeoutSeconds",
            message="faultTolerance.collectiveTimeoutSeconds must be below stepTimeoutSeconds, so the groups "
            "waiting for a hung one answer before the driver gives up on the step; lower "
            "collectiveTimeoutSeconds or raise stepTimeoutSeconds",
            shows=("collectiveTimeoutSeconds", "stepTimeoutSeconds"),
        ),
    )
