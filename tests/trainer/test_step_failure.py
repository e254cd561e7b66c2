"""Steps that keep raising end the run saying why; a group that fails now and then does not.

Two replica groups of one rank, one per simulated pod, a tiny GPT. The ``raise_in_step`` fault
seam makes a group's ranks raise, before their forward, the ``IndexError`` torch's embedding raises
on a token id out of its range (what an out-of-vocabulary token file does to every step).

- Every group raises in every step: no step ever commits, the driver gives up after
  ``max_step_errors`` errors and its error quotes the cause in words; the log shows each loss.
- One node's groups raise in every step but the first, the other's never: training goes on without
  that node's share, the run finishes, and the node is reported once as failing.
"""

from __future__ import annotations

import logging
import time

import pytest
from tests.trainer.helpers import fast_options, tiny_config

from elastrain_trainer.driver import Driver, RaiseInStep, StepFailureError
from elastrain_trainer.driver.step_errors import FAILING_REPORT_LOSSES
from elastrain_trainer.group.worker import FaultTimeouts
from elastrain_trainer.localmode import LocalCluster

CAUSE = "IndexError: index out of range in self"
#: Seconds a hook waits for the failing node's next group before the test fails.
WAIT_SECONDS = 180.0


def test_steps_that_always_raise_stop_the_driver_quoting_the_error(
    two_pods: LocalCluster, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = tiny_config(steps=4, globalBatchSize=4, data={"syntheticTokens": 1024, "numShards": 4})
    driver = Driver(cfg, fast_options(start_groups=2, max_step_errors=3, raise_in_step=RaiseInStep()))
    try:
        with caplog.at_level(logging.INFO, logger="elastrain.driver"), pytest.raises(StepFailureError) as raised:
            driver.run()
    finally:
        driver.shutdown()
    story = "\n".join(map(str, driver.events))
    message = str(raised.value)
    lost = [e["reason"] for e in driver.events if e["kind"] == "group_lost"]
    assert len(lost) >= 3 and all(r == f"train failed: {CAUSE}" for r in lost), story
    assert message.startswith(
        f"replica group steps failed {len(lost)} times with no step committed: a token id out of range of the "
        "embedding: check spec.trainer.model.vocabSize"
    ), message
    assert f"({CAUSE})" in message and message.endswith("create the job again"), message
    assert [e["kind"] for e in driver.events].count("steps_given_up") == 1, story
    assert not any(m.committed for m in driver.metrics), "no step committed"
    # The log told the story as it happened: every loss, the traceback once, the reason for stopping.
    lines = [r.getMessage() for r in caplog.records]
    assert sum(line.startswith("group lost: group") and CAUSE in line for line in lines) == len(lost), lines
    assert sum(line.startswith(f"traceback of {CAUSE}") for line in lines) == 1, lines
    assert any(line == f"giving up: {message}" for line in lines), lines


def test_a_group_that_keeps_failing_while_others_commit_does_not_end_the_run(
    two_pods: LocalCluster, caplog: pytest.LogCaptureFixture
) -> None:
    failing = two_pods.pod_ids()[0]
    cfg = tiny_config(steps=10, globalBatchSize=4, data={"syntheticTokens": 1024, "numShards": 4})
    fault = RaiseInStep(node_id=failing, steps=frozenset(range(1, cfg.steps)))
    # A group that joins as the run ends waits in its quorum call until this bound, and the final flush with it.
    timeouts = FaultTimeouts(collective_seconds=10, quorum_seconds=20, connect_seconds=10)
    driver = Driver(cfg, fast_options(start_groups=2, max_step_errors=2, raise_in_step=fault, timeouts=timeouts))

    def hook(driver: Driver, step: int) -> None:
        """After a commit, wait for the failing node's next group: it joins (and fails) every other attempt."""
        if driver.metrics and not driver.metrics[-1].committed:
            return  # the survivor trains the step alone first: a commit between two failures
        deadline = time.monotonic() + WAIT_SECONDS
        while sum(1 for g in driver.groups.values() if g.ready) < 2:
            assert time.monotonic() < deadline, "\n".join(map(str, driver.events))
            driver.reconcile()
            driver._poll_setup()
            time.sleep(0.05)

    try:
        with caplog.at_level(logging.INFO, logger="elastrain.driver"):
            result = driver.run(hook=hook)
    finally:
        driver.shutdown()
    story = "\n".join(map(str, result.events))
    lost = [e for e in result.events if e["kind"] == "group_lost"]
    assert result.step == cfg.steps, story
    assert len(lost) >= FAILING_REPORT_LOSSES and all(e["reason"] == f"train failed: {CAUSE}" for e in lost), story
    assert "steps_given_up" not in {e["kind"] for e in result.events}, story
    failing_reports = [e for e in result.events if e["kind"] == "group_failing"]
    assert [(e["node"], e["losses"]) for e in failing_reports] == [(failing, FAILING_REPORT_LOSSES)], story
    lines = [r.getMessage() for r in caplog.records]
    assert sum(line.startswith("group failing: node") for line in lines) == 1, lines
