"""The driver: starts one replica group per worker node, runs the steps, owns the shard ledger."""

from elastrain_trainer.driver.loop import Driver, DriverOptions, RunResult
from elastrain_trainer.driver.options import RaiseInStep, StopInStep
from elastrain_trainer.driver.pods import RayNodePods
from elastrain_trainer.driver.setup_errors import GroupSetupError
from elastrain_trainer.driver.step_errors import StepFailureError

__all__ = [
    "Driver",
    "DriverOptions",
    "GroupSetupError",
    "RaiseInStep",
    "RayNodePods",
    "RunResult",
    "StepFailureError",
    "StopInStep",
]
