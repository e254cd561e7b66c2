"""The driver: starts one replica group per worker node, runs the steps, owns the shard ledger."""

from elastrain_trainer.driver.loop import Driver, DriverOptions, RunResult
from elastrain_trainer.driver.pods import RayNodePods
from elastrain_trainer.driver.setup_errors import GroupSetupError

__all__ = ["Driver", "DriverOptions", "GroupSetupError", "RayNodePods", "RunResult"]
