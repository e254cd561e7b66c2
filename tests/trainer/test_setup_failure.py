"""Groups whose set-up keeps raising stop the driver with the reason, instead of restarting for ever.

A first run of one model checkpoints its trained state. A second run of another model (wider) on
the same checkpoint directory finds that checkpoint and starts its groups from it: every group's
set-up raises (the shapes do not match), every time. The driver gives up after ``max_setup_errors``
such errors with no step committed, and its error names the cause: what the head writes to its
termination log and the operator quotes in the job's Failed condition.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.trainer.helpers import fast_options, tiny_config

from elastrain_trainer.checkpoint import CheckpointStore
from elastrain_trainer.driver import Driver, GroupSetupError
from elastrain_trainer.localmode import LocalCluster

MODEL = {"dim": 32, "numHeads": 2, "numLayers": 2, "seqLen": 16, "vocabSize": 64}


def test_groups_that_cannot_start_from_the_checkpoint_stop_the_driver_saying_why(
    two_pods: LocalCluster, tmp_path: Path
) -> None:
    options = fast_options(checkpoint_dir=str(tmp_path), checkpoint_interval=2, start_groups=2, max_setup_errors=3)
    first = Driver(tiny_config(steps=2, globalBatchSize=4, model=MODEL), options)
    try:
        assert first.run().step == 2
    finally:
        first.shutdown()
    assert CheckpointStore(tmp_path).latest() == 2

    wider = Driver(tiny_config(steps=4, globalBatchSize=4, model={**MODEL, "dim": 48}), options)
    try:
        with pytest.raises(GroupSetupError) as raised:
            wider.run()
    finally:
        wider.shutdown()
    message = str(raised.value)
    story = "\n".join(map(str, wider.events))
    # Groups started from the checkpoint failed set-up, each with the cause named (not DCP's list of
    # failed ranks), until the limit; the error counts them and quotes the cause.
    started = [e for e in wider.events if e["kind"] == "group_started"]
    failed = [e["reason"] for e in wider.events if e["kind"] == "group_lost" and e["reason"].startswith("set-up")]
    assert len(failed) >= 3 and sum(e["resume_step"] == 2 for e in started) >= len(failed), story
    cause = "ValueError: Size mismatch between saved torch.Size([64, 32]) and current: torch.Size([64, 48])"
    assert all(r.startswith(f"set-up failed: {cause}") for r in failed), story
    assert message.startswith(f"replica group set-up failed {len(failed)} times with no step committed: group")
    assert cause in message, message
    assert message.endswith("fix what it names (the head's log has each traceback) and create the job again")
    assert [e["kind"] for e in wider.events].count("setup_given_up") == 1, story
    assert not wider.metrics, "no step was trained"
