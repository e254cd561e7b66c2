"""``elastrain pod head``: the head pod: Ray head, torchft lighthouse, driver and progress server.

1. ``ray start --head --block`` on the pod IP and the contract's Ray port; connect to it.
2. Serve progress on the progress port (the operator reads it into ``status.progress``).
3. Run the driver: wait for ``elastic.minReplicas`` worker pods (Ray nodes with the worker
   resource), start a replica group on each, train ``trainer.steps`` steps through node losses and
   joins, checkpointing as the job's checkpoint section says (a restarted head resumes from the
   newest readable checkpoint).
4. Write the run summary next to the checkpoints, wait for the operator to read the final progress,
   stop Ray and exit 0 (every step committed) or 1.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Iterable, Mapping
from types import FrameType
from typing import Any

from elastrain_trainer.config.podenv import PodContract
from elastrain_trainer.config.progress import ExportRequestReport, TrainerState
from elastrain_trainer.errors import SpecError
from elastrain_trainer.pod.progress import ProgressBoard, ProgressServer
from elastrain_trainer.pod.raynode import connect, head_argv, node_ip, start_ray, stop_ray, temp_dir_for
from elastrain_trainer.pod.summary import build_summary, summary_path, write_summary
from elastrain_trainer.pod.termination import write_termination_message

log = logging.getLogger("elastrain.head")

#: Seconds to wait for Ray's head to come up, and for the operator to read the final progress.
RAY_START_TIMEOUT = 120.0
FINAL_READ_TIMEOUT = 60.0
#: Log a progress line at most this often.
LOG_EVERY_SECONDS = 5.0
#: Environment variable (set through spec.pod env) overriding DriverOptions.max_step_errors.
MAX_STEP_ERRORS_ENV = "ELASTRAIN_MAX_STEP_ERRORS"
#: Errors whose message is the whole story (field, value, fix): quoted without the Python type's name.
_WORDED_ERRORS = ("SpecError", "GroupSetupError", "StepFailureError")


def failure_message(err: BaseException) -> str:
    """What the head says about the error that stopped it: a worded error as it is, else ``Type: message``."""
    if isinstance(err, SpecError) or type(err).__name__ in _WORDED_ERRORS:
        return str(err)
    return f"{type(err).__name__}: {err}"


def max_step_errors(env: Mapping[str, str] = os.environ, default: int = 6) -> int:
    """The crash-loop limit: ``ELASTRAIN_MAX_STEP_ERRORS`` if set to a whole number >= 0 (0: never give up)."""
    value = env.get(MAX_STEP_ERRORS_ENV, "").strip()
    if value.isdigit():
        return int(value)
    if value:
        log.warning("%s=%r is not a whole number >= 0; using %d", MAX_STEP_ERRORS_ENV, value, default)
    return default


def checkpoint_path(location: str, *, field: str = "spec.checkpoint.uri") -> str:
    """A filesystem path from a checkpoint or export location (a PVC mount path or a file:// URI)."""
    if location.startswith("file://"):
        return location.removeprefix("file://")
    if "://" in location:
        parent = field.rsplit(".", 1)[0]
        raise SpecError(
            field,
            location,
            "this trainer writes to a filesystem path only",
            f"set {field} to file:///a/shared/path or use {parent}.pvc",
        )
    return location


def newest_export(events: Iterable[Mapping[str, Any]]) -> tuple[str, int] | None:
    """Path and step of the newest model export, from the driver's ``exported`` events."""
    exports = [(str(e["path"]), int(e["step"])) for e in events if e["kind"] == "exported"]
    return max(exports, key=lambda pair: pair[1]) if exports else None


def export_request_report(events: Iterable[Mapping[str, Any]]) -> ExportRequestReport | None:
    """The newest export asked for while training, from the driver's ``request_exported`` /
    ``request_export_failed`` events, as the progress report carries it."""
    outcome = None
    for e in events:
        if e["kind"] in ("request_exported", "request_export_failed"):
            outcome = e
    if outcome is None:
        return None
    return ExportRequestReport(
        request_id=str(outcome["request"]),
        step=int(outcome["step"]),
        path=str(outcome["path"]) if outcome["kind"] == "request_exported" else None,
        error=None if outcome["kind"] == "request_exported" else str(outcome.get("error", ""))[:500],
    )


def newest_checkpoint(events: Iterable[Mapping[str, Any]]) -> int | None:
    """The step of the newest checkpoint marked latest, from the driver's ``checkpoint`` events."""
    return max((int(e["checkpoint_step"]) for e in events if e["kind"] == "checkpoint"), default=None)


def _raise_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def run_head(contract: PodContract) -> int:
    from elastrain_trainer.data.checks import check_data
    from elastrain_trainer.driver import Driver, DriverOptions
    from elastrain_trainer.driver.export_request import ExportRequests
    from elastrain_trainer.driver.leave import LeaveRequests
    from elastrain_trainer.driver.lighthouse import LighthouseOptions
    from elastrain_trainer.driver.options import apply_fault_tolerance
    from elastrain_trainer.driver.story import warnings_of
    from elastrain_trainer.metrics import StepMetrics

    signal.signal(signal.SIGTERM, _raise_on_sigterm)  # a deleted pod stops Ray on the way out
    ip = node_ip(contract)
    cfg = contract.trainer
    checkpoint = contract.checkpoint
    board = ProgressBoard(cfg.steps)
    requests = ExportRequests()  # the operator's poll names a pending export request; the driver serves it
    leaves = LeaveRequests()  # the operator's poll names the pods it is about to delete; their groups leave

    def on_leave(addresses: tuple[str, ...]) -> None:
        leaves.ask(addresses)
        board.update(left=leaves.acknowledged())

    server = ProgressServer(board, ip, contract.progress_port, on_export_request=requests.ask, on_leave=on_leave)
    ray_process: subprocess.Popen[bytes] | None = None
    driver: Any = None
    code = 1
    try:
        checkpoint_dir = checkpoint_path(checkpoint.location) if checkpoint else None
        options = DriverOptions(
            checkpoint_dir=checkpoint_dir,
            checkpoint_interval=checkpoint.interval_steps if checkpoint else 0,
            checkpoint_keep=checkpoint.keep if checkpoint else 3,
            checkpoint_max_failures=checkpoint.max_consecutive_failures if checkpoint else 0,
            async_checkpoint=checkpoint.async_save if checkpoint else True,
            export_dir=checkpoint_path(contract.export.location, field="spec.export.uri") if contract.export else None,
            lighthouse=LighthouseOptions(host=ip, port=contract.lighthouse_port),
            start_groups=contract.min_workers,
            max_step_errors=max_step_errors(),
        )
        options = apply_fault_tolerance(options, contract.fault_tolerance)
        data_report = check_data(cfg)  # before Ray starts: bad data fails the job in seconds
        ray_process = start_ray(head_argv(contract, temp_dir_for(contract.pod_name or contract.job_name)))
        connect(f"{ip}:{contract.ray_port}", ip, ray_process, RAY_START_TIMEOUT)
        driver = Driver(cfg, options, data_report=data_report)
        driver.export_requests = requests
        driver.leave_requests = leaves
        board.update(warnings=warnings_of(driver.events))  # data warnings: before the first step
        log.info(
            "driver up: lighthouse %s, waiting for %d worker pod(s)", driver.lighthouse.address, options.start_groups
        )
        last_log = 0.0

        def on_step(m: StepMetrics) -> None:
            nonlocal last_log
            if not m.committed:
                return
            board.update(
                warnings=warnings_of(driver.events),
                state=TrainerState.TRAINING,
                step=m.step,
                loss=m.loss,
                val_loss=m.val_loss if m.val_loss is not None else board.get().val_loss,
                tokens_per_second=m.tokens_per_second,
                groups=m.groups,
                world_size=m.world_size,
                groups_out=driver.out_of_quorum.count,
                groups_out_reason=driver.out_of_quorum.last_reason,
                last_checkpoint_step=newest_checkpoint(driver.events),
                checkpoint_failure=driver.checkpoint_health.report(),
                export_request=export_request_report(driver.events),
            )
            now = time.monotonic()
            if now - last_log >= LOG_EVERY_SECONDS or m.step >= cfg.steps:
                last_log = now
                log.info(
                    "step %d/%d loss %.4f, %.0f tokens/s, %d group(s), world size %d",
                    m.step, cfg.steps, m.loss, m.tokens_per_second, m.groups, m.world_size,
                )  # fmt: skip

        result = driver.run(on_step=on_step)
        audits = [result.ledger.audit(epoch) for epoch in range(result.ledger.epochs_started)]
        if checkpoint_dir:
            path = summary_path(checkpoint_dir, contract.pod_name or "head")
            summary = build_summary(
                job=contract.job_name,
                pod=contract.pod_name or "head",
                step=result.step,
                total_steps=cfg.steps,
                audits=audits,
                committed=result.committed,
                metrics=[m for m in result.metrics if m.committed],
                events=result.events,
            )
            try:
                write_summary(path, summary)
                log.info("run summary: %s", path)
            except OSError as err:  # the checkpoint volume may be full or read-only: the run still counts
                log.warning("run summary not written to %s: %s", path, err)
        for audit in audits:
            log.info(
                "epoch %d: %d/%d samples trained, %d duplicated",
                audit.epoch, audit.trained, audit.num_samples, audit.duplicated,
            )  # fmt: skip
        # The last saves are marked by the final flush and the final checkpoint, after the last step.
        board.update(
            last_checkpoint_step=newest_checkpoint(result.events), checkpoint_failure=driver.checkpoint_health.report()
        )
        exported = newest_export(result.events)
        if exported is not None:
            board.update(export_path=exported[0], export_step=exported[1])
            log.info("model exported at step %d: %s", exported[1], exported[0])
        if result.step >= cfg.steps:
            board.update(state=TrainerState.FINISHED, step=result.step)
            code = 0
        else:
            board.update(state=TrainerState.FAILED, message=f"stopped at step {result.step} of {cfg.steps}")
    except Exception as err:
        if not isinstance(err, SpecError):  # a worded error says it all; any other needs its traceback
            traceback.print_exc()
        log.error("driver stopped: %s", failure_message(err))
        board.update(state=TrainerState.FAILED, message=failure_message(err)[:500])
    finally:
        if code != 0:  # why, for the container status and so for the job's Failed condition
            write_termination_message(f"trainer: {board.get().message or 'the driver stopped'}")
        final = board.get().state in (TrainerState.FINISHED, TrainerState.FAILED)
        if final and not board.wait_read(FINAL_READ_TIMEOUT):
            log.warning("the operator did not read the final progress within %.0f s", FINAL_READ_TIMEOUT)
        if driver is not None:
            driver.shutdown()
        import ray

        ray.shutdown()
        if ray_process is not None:
            stop_ray(ray_process)
        server.shutdown()
    return code


def configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
