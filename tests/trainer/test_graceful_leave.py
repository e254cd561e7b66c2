"""Graceful leave on a real local Ray cluster: groups asked to leave go at a step boundary, not as a crash.

The operator names the pods a scale-down deletes on its progress poll; here the test puts them into the
driver's mailbox itself (the poll's parsing is a unit test). The pods are Ray nodes on this machine,
all on one address, so they are named by Ray node id (:class:`NodeIdPods`).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from tests.trainer.helpers import assert_finished_epochs_exact, fast_options, tiny_config

from elastrain_trainer.driver import Driver
from elastrain_trainer.driver.pods import RayNodePods
from elastrain_trainer.localmode import LocalCluster


class NodeIdPods(RayNodePods):
    """Local pods share one address: the operator's name for a pod is its Ray node id here."""

    def pod_address(self, node: dict[str, Any]) -> str:
        return str(node["NodeID"])


@pytest.fixture(scope="module")
def three_pods() -> Iterator[LocalCluster]:
    cluster = LocalCluster(pods=3, ranks_per_pod=1)
    try:
        yield cluster
    finally:
        cluster.shutdown()


def test_groups_asked_to_leave_go_at_a_step_boundary_and_the_survivor_trains_on(three_pods: LocalCluster) -> None:
    cfg = tiny_config(steps=24, globalBatchSize=6, data={"syntheticTokens": 1024, "numShards": 6})
    driver = Driver(cfg, fast_options(start_groups=3), pods=NodeIdPods())
    state: dict[str, Any] = {}

    def hook(d: Driver, step: int) -> None:
        together = len(d.committed) >= 3 and all(len(a) == 3 for a in d.committed[-2:])
        if "asked" not in state and together:
            by_node = {g.node_id: g.group_id for g in d.groups.values()}
            nodes = sorted(by_node)
            state.update(
                asked=step,
                committed=len(d.committed),
                survivor=by_node[nodes[0]],
                leavers={by_node[n] for n in nodes[1:]},
                nodes=set(nodes[1:]),
            )
            d.leave_requests.ask(nodes[1:])  # 3 -> 1, as the operator's poll would say

    try:
        result = driver.run(hook=hook)
        acknowledged = driver.leave_requests.acknowledged()
        final = {g.group_id: g.node_id for g in driver.groups.values()}
    finally:
        driver.shutdown()
    events = result.events
    story = "\n".join(map(str, events))
    assert result.step == cfg.steps, story
    left = [e for e in events if e["kind"] == "group_left"]
    assert {e["group"] for e in left} == state["leavers"], story
    assert {e["step"] for e in left} == {state["asked"]}  # at the boundary the ask found, not later
    # Nothing crashed and nothing waited out a quorum that could not complete.
    assert not [e for e in events if e["kind"] in ("group_lost", "quorum_abandoned", "train_timeout")], story
    assert acknowledged == sorted(state["nodes"])
    # No group was started again on a node asked to leave; the survivor committed every step after.
    assert set(final) == {state["survivor"]}, story
    after = result.committed[state["committed"] :]
    assert after and all(set(a) == {state["survivor"]} for a in after)
    # Exactly once: every sample of each finished epoch trained once, across the leave.
    assert_finished_epochs_exact(result.committed, result.ledger)
    # The survivor's pause across the leave is recorded (its length is reported, not asserted: a shared machine).
    [settled] = [e for e in events if e["kind"] == "leave_settled"]
    assert set(settled["groups"]) == state["leavers"] and settled["pause_seconds"] > 0, settled
    times = [m.wall_time for m in result.metrics if m.committed]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert settled["pause_seconds"] in {round(g, 3) for g in gaps}, (settled, gaps)
    steady = sorted(gaps)[len(gaps) // 2]
    print(f"graceful leave 3 -> 1: pause {settled['pause_seconds']:.2f} s, median step {steady:.2f} s")
