"""Fault injection: one run of a tiny GPT loses a worker more than twenty times and still trains exactly.

Three replica groups of one rank each, one per simulated pod (Ray node). Between steps the hook
injects, in turn: ``ray.kill`` of a rank actor, ``SIGKILL`` of a rank's process, and the loss of
a whole pod (its Ray node removed, a new one added). The next fault waits until the group that
replaced the previous victim is back in a committed step, so some group always holds the trained
state and the run never has to fall back to a checkpoint (one is written anyway).
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import ray
from tests.trainer.helpers import assert_bit_identical, count_samples, fast_options, tiny_config

from elastrain_trainer.driver import Driver
from elastrain_trainer.localmode import LocalCluster

GROUPS = 3
FAULTS = 21
KINDS = ("ray_kill", "process_kill", "pod_loss")
#: A fault takes two or three steps (the loss, the survivors' step, the replacement's healing step).
STEPS = 4 * FAULTS
#: No fault in the last steps: the last replacement has time to join, and every group is compared.
QUIET_STEPS = 5
#: Seconds the hook waits for a replacement group (or a node's death) before the test fails.
WAIT_SECONDS = 180.0


#: Ray's node health check, tightened from 3 s x 5 misses so a removed pod is noticed in about a second.
RAY_HEALTH_CHECK = {
    "RAY_health_check_period_ms": "300",
    "RAY_health_check_timeout_ms": "300",
    "RAY_health_check_failure_threshold": "3",
}


@pytest.fixture(scope="module")
def three_pods() -> Iterator[LocalCluster]:
    """Three pods of one rank; the Ray processes started here read the health-check settings."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in RAY_HEALTH_CHECK.items():
            patch.setenv(name, value)
        cluster = LocalCluster(pods=GROUPS, ranks_per_pod=1)
    try:
        yield cluster
    finally:
        cluster.shutdown()


@dataclass
class FaultInjector:
    """The ``Driver.run`` hook: one fault whenever every group is back in the last committed step."""

    cluster: LocalCluster
    target: int
    injected: list[dict[str, Any]] = field(default_factory=list)

    def __call__(self, driver: Driver, step: int) -> None:
        # Also after the last fault: the run ends with every group trained, and compared, in its last steps.
        self._wait_for_replacements(driver)
        if len(self.injected) >= self.target or step > driver.cfg.steps - QUIET_STEPS:
            return
        last = driver.committed[-1] if driver.committed else {}
        if len(driver.groups) < GROUPS or set(last) != set(driver.groups):
            return  # a replacement is ready but has not trained yet: its first quorum heals it
        kind = KINDS[len(self.injected) % len(KINDS)]
        victim = driver.groups[sorted(driver.groups)[len(self.injected) % GROUPS]]
        self.injected.append({"kind": kind, "group": victim.group_id, "step": step})
        if kind == "ray_kill":
            ray.kill(victim.actors[0], no_restart=True)
        elif kind == "process_kill":
            pid = ray.get(victim.actors[0].__ray_call__.remote(lambda _self: os.getpid()), timeout=60)
            os.kill(int(pid), signal.SIGKILL)
        else:
            self.cluster.remove_pod(victim.node_id)
            # The driver only sees a pod gone once Ray marks its node dead; wait for that so it does not
            # start a group on the dead node (a second, not injected, loss).
            _wait(lambda: victim.node_id not in driver.pods.alive(), f"node {victim.node_id} to be marked dead", driver)
            self.cluster.add_pod()

    def _wait_for_replacements(self, driver: Driver) -> None:
        """Block until every pod runs a ready group, once the driver has dropped the groups it lost."""
        killed = {fault["group"] for fault in self.injected}
        if killed & set(driver.groups):
            return  # the driver notices the loss in the next quorum

        def full() -> bool:
            driver.reconcile()
            driver._poll_setup()
            return sum(1 for g in driver.groups.values() if g.ready) >= GROUPS

        _wait(full, f"{GROUPS} ready groups", driver)


def _wait(condition: Callable[[], bool], what: str, driver: Driver) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            groups = {g.group_id: (g.node_id[:8], g.ready) for g in driver.groups.values()}
            story = "\n".join(map(str, driver.events))
            raise AssertionError(f"waited {WAIT_SECONDS:.0f} s for {what}; groups {groups}; events:\n{story}")
        time.sleep(0.05)


def test_twenty_worker_losses_in_one_run_train_every_sample_exactly_once(
    three_pods: LocalCluster, tmp_path: Path
) -> None:
    cfg = tiny_config(steps=STEPS, globalBatchSize=6, data={"syntheticTokens": 1024, "numShards": 6})
    driver = Driver(
        cfg, fast_options(checkpoint_dir=str(tmp_path), checkpoint_interval=10, checkpoint_keep=2, start_groups=GROUPS)
    )
    injector = FaultInjector(three_pods, FAULTS)
    started = time.monotonic()
    try:
        result = driver.run(hook=injector)
        fingerprints = driver.fingerprints()
    finally:
        driver.shutdown()
    seconds = time.monotonic() - started
    story = "\n".join(map(str, result.events))
    lost = [e for e in result.events if e["kind"] == "group_lost"]
    kinds = Counter(str(f["kind"]) for f in injector.injected)
    setup = [e["setup_seconds"] for e in result.events if e["kind"] == "group_ready"]
    print(
        f"\nfault injection: {len(injector.injected)} faults {dict(kinds)}, {result.step} steps "
        f"({len(result.metrics)} attempts), {seconds:.0f} s, group set-up {min(setup):.1f}-{max(setup):.1f} s, "
        f"events {dict(Counter(e['kind'] for e in result.events))}"
    )

    assert result.step == cfg.steps
    assert len(injector.injected) == FAULTS and set(kinds) == set(KINDS), story
    # The driver noticed every fault, and nothing else was lost.
    assert len(lost) == len(injector.injected), story
    assert Counter(e["group"] for e in lost) == Counter(f["group"] for f in injector.injected), story
    # Every sample of every finished epoch trained exactly once; the epoch in progress has no duplicate.
    assert len(result.committed) == cfg.steps
    counts = count_samples(result.committed)
    num_samples = result.ledger.num_samples
    finished = [e for e in counts if result.ledger.audit(e).trained == num_samples]
    assert len(finished) >= 4, (
        f"{cfg.steps} steps of 6 samples cover {cfg.steps * 6 // num_samples} epochs of {num_samples}"
    )
    for epoch in counts:
        audit = result.ledger.audit(epoch)
        assert audit.duplicated == 0, audit
        assert sorted(counts[epoch].values()) == [1] * audit.trained, f"epoch {epoch}"
        if epoch in finished:
            assert audit.exact, audit
    # All three groups trained the last step and hold the same parameters and optimizer state.
    assert set(result.committed[-1]) == set(fingerprints) and len(fingerprints) == GROUPS, story
    first, *others = fingerprints.values()
    for other in others:
        assert_bit_identical(first, other)
