"""Whole lifecycles, round by round, in memory: decide -> apply to a dict of pods -> compute_status -> events.

The same loop as the handler's reconcile, with the cluster replaced by a dict the test edits between
rounds (a pod starts, fails, is evicted, its node is lost). No mocks, no sleeps: each round is one
minute later. A pod deleted while its node is unreachable stays Terminating, as on a real cluster.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from elastrain_operator.api import JobPhase, Reason, Role, TrainingJob, TrainingJobStatus
from elastrain_operator.builders.names import head_pod_name, worker_pod_name
from elastrain_operator.reconcile.decide import (
    CreateNetworkPolicy,
    CreatePod,
    CreateService,
    DeleteJob,
    DeletePod,
    decide,
)
from elastrain_operator.reconcile.observed import Observed, ObservedPod
from elastrain_operator.reconcile.status import compute_status, transition_notes

pytestmark = pytest.mark.unit

#: The conftest's ``make_job`` fixture (fixtures, not imports: tests/unit is not a package).
MakeJob = Callable[..., Any]
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


@dataclass
class World:
    """A job's pods and Service in memory, plus what the operator wrote."""

    job: TrainingJob
    pods: dict[str, ObservedPod] = field(default_factory=dict)
    service: bool = False
    policy: bool = False
    status: TrainingJobStatus | None = None
    events: list[tuple[str, Reason, str]] = field(default_factory=list)
    deleted: bool = False
    created: list[str] = field(default_factory=list)
    now: datetime = T0

    def observed(self) -> Observed:
        return Observed(tuple(self.pods.values()), self.service, self.policy)

    def reconcile(self) -> TrainingJobStatus:
        """One round, one minute after the last one."""
        self.now += timedelta(minutes=1)
        decision = decide(self.job, self.status, self.observed(), self.now)
        for action in decision.actions:
            if isinstance(action, CreateService):
                self.service = True
            elif isinstance(action, CreateNetworkPolicy):
                self.policy = True
            elif isinstance(action, CreatePod):
                if action.role is Role.HEAD:
                    name = head_pod_name("demo", action.attempt)
                else:
                    name = worker_pod_name("demo", action.index, action.attempt)
                assert name not in self.pods, f"{name} created twice"
                self.pods[name] = ObservedPod(
                    name=name, role=action.role, index=action.index, phase="Pending", attempt=action.attempt
                )
                self.created.append(name)
            elif isinstance(action, DeletePod):
                pod = self.pods.get(action.name)
                assert pod is not None and not pod.terminating, f"{action.name} deleted twice"
                if pod.node_lost:  # nobody can confirm the kill: the pod stays Terminating
                    self.pods[action.name] = replace(pod, terminating=True)
                else:
                    del self.pods[action.name]
            elif isinstance(action, DeleteJob):
                self.deleted = True
        new = compute_status(self.job, self.status, decision, self.observed(), self.now)
        self.events += [(n.type, n.reason, n.message) for n in transition_notes(self.status, decision)]
        self.status = new
        return new

    def start(self, *names: str) -> None:
        """The kubelet: the pods run and turn ready."""
        for name in names or tuple(n for n, p in self.pods.items() if p.active):
            self.pods[name] = replace(self.pods[name], phase="Running", ready=True, unschedulable=None)

    def set(self, name: str, **fields: Any) -> None:
        self.pods[name] = replace(self.pods[name], **fields)

    def lose(self, name: str, why: str = "node gpu-node-1 NotReady (Unknown)") -> None:
        """The pod's node stops reporting: the API still says Running, its processes are gone."""
        self.set(name, node_lost=why, lost_since=self.now)

    def forget(self, name: str) -> None:
        """The node is deleted and the pod garbage collector removes its Terminating pods."""
        assert self.pods[name].terminating
        del self.pods[name]

    def live(self, role: str, index: int = 0) -> str:
        """Name of the live pod holding ``role``/``index``."""
        [name] = [n for n, p in self.pods.items() if p.role.value == role and p.index == index and p.active]
        return name

    def conditions(self) -> dict[str, tuple[str, str | None]]:
        return {c.type: (c.status, c.reason) for c in (self.status.conditions or []) if self.status}

    def resizes(self) -> list[tuple[int, int, str]]:
        return [(r.from_, r.to, r.reason) for r in (self.status.resizes or [] if self.status else [])]

    def phases(self) -> list[str]:
        return [m.split(":")[0] for _, _, m in self.events if " -> " in m]

    def warnings(self) -> list[tuple[Reason, str]]:
        return [(reason, message) for kind, reason, message in self.events if kind == "Warning"]


def test_create_run_lose_a_worker_recover_and_succeed(make_job: MakeJob) -> None:
    world = World(make_job(replicas=3, elastic=(2, 3), restart_policy="OnFailure", backoff_limit=1, ttl=120).obj())

    assert world.reconcile().phase is JobPhase.PENDING
    assert world.service and world.policy
    assert sorted(world.pods) == ["demo-head", "demo-worker-0", "demo-worker-1", "demo-worker-2"]
    start = world.status.start_time if world.status else None

    world.start()
    assert world.reconcile().phase is JobPhase.RUNNING

    world.set("demo-worker-1", phase="Failed", ready=False, exit_code=1, reason="Error")
    status = world.reconcile()
    assert status.phase is JobPhase.RUNNING  # two of three workers train on; the replacement is on its way
    assert status.restarts is not None and status.restarts.application == 1
    assert "demo-worker-1" not in world.pods
    assert world.pods["demo-worker-1-r1"].phase == "Pending"  # created in the same round

    status = world.reconcile()  # the replacement starts, and the failure is not counted twice
    assert status.phase is JobPhase.RESCALING
    assert status.restarts is not None and status.restarts.application == 1
    world.start("demo-worker-1-r1")
    assert world.reconcile().phase is JobPhase.RUNNING

    world.set("demo-worker-2", phase="Failed", ready=False, exit_code=137, reason="OOMKilled")
    status = world.reconcile()
    assert status.restarts is not None and (status.restarts.application, status.restarts.infrastructure) == (1, 0)
    assert world.reconcile().phase is JobPhase.RESCALING
    world.start("demo-worker-2-r1")
    assert world.reconcile().phase is JobPhase.RUNNING
    assert world.created == [
        "demo-head",
        "demo-worker-0",
        "demo-worker-1",
        "demo-worker-2",
        "demo-worker-1-r1",
        "demo-worker-2-r1",
    ]

    world.set("demo-head", phase="Succeeded", ready=False, exit_code=0)
    status = world.reconcile()
    assert status.phase is JobPhase.SUCCEEDED
    assert sorted(world.pods) == ["demo-head"]
    assert status.start_time == start
    assert status.completion_time == world.now
    finished = world.now

    world.reconcile()  # one minute after completion: within the TTL
    assert not world.deleted
    world.reconcile()  # two minutes: the TTL has passed
    assert world.deleted
    assert world.status is not None and world.status.completion_time == finished

    assert world.phases() == [
        "new -> Pending",
        "Pending -> Running",
        "Running -> Rescaling",
        "Rescaling -> Running",
        "Running -> Rescaling",
        "Rescaling -> Running",
        "Running -> Succeeded",
    ]
    warnings = world.warnings()
    assert [r for r, _ in warnings] == [Reason.APPLICATION_ERROR, Reason.WORKER_LOST]
    assert "demo-worker-1 failed with exit code 1" in warnings[0][1]
    assert "exit code 137 (OOMKilled)" in warnings[1][1]
    assert world.resizes() == [
        (3, 2, Reason.WORKER_LOST),
        (2, 3, Reason.SCALED_UP),
        (3, 2, Reason.WORKER_LOST),
        (2, 3, Reason.SCALED_UP),
    ]


def test_backoff_limit_counts_failures_across_rounds(make_job: MakeJob) -> None:
    world = World(make_job(replicas=1, restart_policy="OnFailure", backoff_limit=2).obj())
    world.reconcile()
    for attempt in (1, 2, 3):
        world.start()
        assert world.reconcile().phase is JobPhase.RUNNING
        world.set(world.live("worker"), phase="Failed", ready=False, exit_code=3)
        status = world.reconcile()
        assert status.restarts is not None and status.restarts.application == attempt
        if attempt <= 2:
            assert status.phase is JobPhase.PENDING
            assert world.live("worker") == f"demo-worker-0-r{attempt}"  # replaced in the same round
    assert world.status is not None and world.status.phase is JobPhase.FAILED
    failed = {c.type: c for c in world.status.conditions or []}["Failed"]
    assert failed.reason == Reason.BACKOFF_LIMIT_EXCEEDED
    assert "3 application failures, more than runPolicy.backoffLimit 2" in (failed.message or "")
    assert world.created == ["demo-head", "demo-worker-0", "demo-worker-0-r1", "demo-worker-0-r2"]
    assert "demo-head" not in world.pods
    world.reconcile()
    assert world.status.phase is JobPhase.FAILED  # final


def test_suspend_and_resume(make_job: MakeJob) -> None:
    wrapper = make_job(replicas=2, deadline=600)
    world = World(wrapper.obj())
    world.reconcile()
    world.start()
    world.reconcile()

    world.job = wrapper.suspend(True).obj()
    status = world.reconcile()
    assert status.phase is JobPhase.SUSPENDED
    assert world.pods == {}
    assert status.start_time is None
    suspended = {c.type: c for c in status.conditions or []}["Suspended"]
    assert (suspended.status, suspended.reason) == ("True", Reason.SUSPENDED)

    for _ in range(30):  # half an hour suspended: the deadline clock is stopped
        assert world.reconcile().phase is JobPhase.SUSPENDED

    world.job = wrapper.suspend(False).obj()
    status = world.reconcile()
    assert status.phase is JobPhase.PENDING
    assert status.start_time == world.now
    assert sorted(world.pods) == ["demo-head", "demo-worker-0", "demo-worker-1"]  # all gone: attempt 0 again
    assert {c.type: c for c in status.conditions or []}["Suspended"].status == "False"
    world.start()
    assert world.reconcile().phase is JobPhase.RUNNING
    normal = [(r, m) for k, r, m in world.events if k == "Normal" and " -> " not in m]
    assert normal == [(Reason.RESUMED, "runPolicy.suspend is false: pods recreated")]
    assert world.phases() == [
        "new -> Pending",
        "Pending -> Running",
        "Running -> Suspended",
        "Suspended -> Pending",
        "Pending -> Running",
    ]
    assert world.resizes() == []


def test_scale_up_blocked_then_scale_down(make_job: MakeJob) -> None:
    wrapper = make_job(replicas=2, elastic=(1, 4))
    world = World(wrapper.obj())
    world.reconcile()
    world.start()
    world.reconcile()

    world.job = wrapper.replicas(4).obj()
    assert world.reconcile().phase is JobPhase.RUNNING  # 2/4: the new pods were only just created
    world.start("demo-worker-2")
    world.set("demo-worker-3", unschedulable="0/4 nodes are available")
    status = world.reconcile()
    assert status.phase is JobPhase.RUNNING  # trains with 3; the fourth waits for capacity
    assert world.conditions()["ScaleUpBlocked"] == ("True", Reason.UNSCHEDULABLE)
    assert world.conditions()["Rescaling"][0] == "False"
    assert status.workers is not None and (status.workers.desired, status.workers.ready) == (4, 3)

    world.job = wrapper.replicas(2).obj()
    status = world.reconcile()
    assert sorted(world.pods) == ["demo-head", "demo-worker-0", "demo-worker-1"]
    assert status.phase is JobPhase.RUNNING
    assert world.conditions()["ScaleUpBlocked"] == ("False", Reason.WORKERS_READY)
    assert world.resizes() == [(2, 3, Reason.SCALED_UP), (3, 2, Reason.SCALED_DOWN)]
    assert world.phases() == ["new -> Pending", "Pending -> Running"]


def test_scale_up_rescales_while_the_new_workers_start(make_job: MakeJob) -> None:
    wrapper = make_job(replicas=1, elastic=(1, 3))
    world = World(wrapper.obj())
    world.reconcile()
    world.start()
    world.reconcile()
    world.job = wrapper.replicas(3).obj()
    world.reconcile()
    assert world.reconcile().phase is JobPhase.RESCALING
    world.start("demo-worker-1")
    assert world.reconcile().phase is JobPhase.RESCALING
    world.start("demo-worker-2")
    assert world.reconcile().phase is JobPhase.RUNNING
    assert world.resizes() == [(1, 2, Reason.SCALED_UP), (2, 3, Reason.SCALED_UP)]
    assert world.phases() == [
        "new -> Pending",
        "Pending -> Running",
        "Running -> Rescaling",
        "Rescaling -> Running",
    ]


# -- node loss ----------------------------------------------------------------------------------------------


def running_world(make_job: MakeJob, **setters: Any) -> World:
    world = World(make_job(**setters).obj())
    world.reconcile()
    world.start()
    assert world.reconcile().phase is JobPhase.RUNNING
    return world


def test_lost_worker_is_replaced_at_once_and_the_job_grows_back(make_job: MakeJob) -> None:
    """The issue's scenario: 3 workers, a node fails, no free node, then capacity returns."""
    world = running_world(make_job, replicas=3, elastic=(2, 3))

    world.lose("demo-worker-1")
    status = world.reconcile()
    assert status.phase is JobPhase.RUNNING  # 2 of 3 train on
    assert status.workers is not None and (status.workers.desired, status.workers.ready) == (3, 2)
    assert world.pods["demo-worker-1"].terminating  # stays while its node is unreachable
    assert world.pods["demo-worker-1-r1"].phase == "Pending"
    assert world.warnings() == [
        (
            Reason.WORKER_LOST,
            "worker pod demo-worker-1 lost: node gpu-node-1 NotReady (Unknown); "
            "replacing it while the other workers keep training",
        )
    ]
    assert status.restarts is not None and (status.restarts.application, status.restarts.infrastructure) == (0, 0)

    world.set("demo-worker-1-r1", unschedulable="0/4 nodes are available: 1 node(s) were unschedulable")
    status = world.reconcile()
    assert status.phase is JobPhase.RUNNING
    assert world.conditions()["ScaleUpBlocked"] == ("True", Reason.UNSCHEDULABLE)
    blocked = {c.type: c for c in status.conditions or []}["ScaleUpBlocked"]
    assert blocked.message == (
        "pod demo-worker-1-r1 cannot be scheduled: 0/4 nodes are available: 1 node(s) were unschedulable"
    )
    running = {c.type: c for c in status.conditions or []}["Running"]
    assert running.message == "2/3 workers ready; 1 waiting for capacity (see condition ScaleUpBlocked)"
    for _ in range(10):  # it may wait long: no duplicate, no phase change
        assert world.reconcile().phase is JobPhase.RUNNING
    world.forget("demo-worker-1")  # the node is deleted; the old pod goes with it
    assert world.reconcile().phase is JobPhase.RUNNING

    world.set("demo-worker-1-r1", unschedulable=None)  # a node joins: scheduled, starting
    assert world.reconcile().phase is JobPhase.RESCALING
    assert world.conditions()["ScaleUpBlocked"] == ("False", Reason.WORKERS_READY)
    world.start("demo-worker-1-r1")
    status = world.reconcile()
    assert status.phase is JobPhase.RUNNING
    assert status.workers is not None and status.workers.ready == 3
    assert world.resizes() == [(3, 2, Reason.WORKER_LOST), (2, 3, Reason.SCALED_UP)]
    assert world.created.count("demo-worker-1-r1") == 1
    assert sorted(world.pods) == ["demo-head", "demo-worker-0", "demo-worker-1-r1", "demo-worker-2"]


def test_lost_head_recreates_the_ray_cluster(make_job: MakeJob) -> None:
    world = running_world(make_job, replicas=2, backoff_limit=0)
    world.lose("demo-head", "node cpu-node-0 deleted")
    status = world.reconcile()
    assert status.phase is JobPhase.PENDING
    assert (status.restarts.application, status.restarts.infrastructure) == (0, 1)  # type: ignore[union-attr]
    assert sorted(world.pods) == ["demo-head", "demo-head-r1", "demo-worker-0-r1", "demo-worker-1-r1"]
    assert world.pods["demo-head"].terminating
    assert world.warnings() == [
        (
            Reason.NODE_LOST,
            "head pod demo-head lost: node cpu-node-0 deleted; "
            "recreating it, training restarts from the last checkpoint",
        )
    ]
    world.start()
    status = world.reconcile()
    assert status.phase is JobPhase.RUNNING
    assert status.restarts is not None and status.restarts.infrastructure == 1  # counted once
    assert world.resizes() == [(2, 0, Reason.WORKER_LOST), (0, 2, Reason.SCALED_UP)]


def test_every_worker_lost_counts_one_infrastructure_restart(make_job: MakeJob) -> None:
    world = running_world(make_job, replicas=2, elastic=(1, 2, 120))
    world.lose("demo-worker-0")
    world.lose("demo-worker-1")
    status = world.reconcile()
    assert status.restarts is not None and status.restarts.infrastructure == 1
    assert status.phase is JobPhase.RESCALING  # below min, within the grace
    assert world.conditions()["Running"] == ("True", Reason.BELOW_MIN_REPLICAS)
    world.start()
    assert world.reconcile().phase is JobPhase.RUNNING
    assert world.status is not None and world.status.restarts is not None
    assert world.status.restarts.infrastructure == 1
    assert world.resizes() == [(2, 0, Reason.WORKER_LOST), (0, 2, Reason.SCALED_UP)]


def test_below_min_waits_in_rescaling_for_the_grace_then_pending_never_failed(make_job: MakeJob) -> None:
    world = running_world(make_job, replicas=3, elastic=(2, 3, 120))
    for name in ("demo-worker-1", "demo-worker-2"):
        world.lose(name)
    assert world.reconcile().phase is JobPhase.RESCALING  # minute 0 of the grace
    for name in ("demo-worker-1-r1", "demo-worker-2-r1"):
        world.set(name, unschedulable="0/4 nodes are available")
    assert world.reconcile().phase is JobPhase.RESCALING  # minute 1
    status = world.reconcile()  # minute 2: the grace is over
    assert status.phase is JobPhase.PENDING
    running = {c.type: c for c in status.conditions or []}["Running"]
    assert (running.status, running.reason) == ("False", Reason.BELOW_MIN_REPLICAS)
    assert running.message == (
        "1 workers ready, fewer than the 2 needed; waiting for capacity (pod demo-worker-1-r1: 0/4 nodes are available)"
    )
    for _ in range(60):
        assert world.reconcile().phase is JobPhase.PENDING
    world.start("demo-worker-1-r1")
    assert world.reconcile().phase is JobPhase.RUNNING  # 2 of 3, the third still blocked
    world.start("demo-worker-2-r1")
    assert world.reconcile().phase is JobPhase.RUNNING
    assert world.phases() == [
        "new -> Pending",
        "Pending -> Running",
        "Running -> Rescaling",
        "Rescaling -> Pending",
        "Pending -> Running",
    ]
    # The history follows the job through Pending: it never ends at a size the job left.
    assert world.resizes() == [(3, 1, Reason.WORKER_LOST), (1, 2, Reason.SCALED_UP), (2, 3, Reason.SCALED_UP)]


def test_fixed_size_job_losing_a_worker_is_pending_at_once(make_job: MakeJob) -> None:
    world = running_world(make_job, replicas=2)
    world.lose("demo-worker-0", "node gpu-node-0 deleted")
    status = world.reconcile()
    assert status.phase is JobPhase.PENDING
    assert world.conditions()["Running"] == ("False", Reason.BELOW_MIN_REPLICAS)
    world.start("demo-worker-0-r1")
    assert world.reconcile().phase is JobPhase.RUNNING
    assert world.resizes() == [(2, 1, Reason.WORKER_LOST), (1, 2, Reason.SCALED_UP)]


def test_below_min_grace_counts_from_the_drop_not_from_an_earlier_rescaling(make_job: MakeJob) -> None:
    """A job already Rescaling (a replacement starting) that then falls below min still gets its grace."""
    world = running_world(make_job, replicas=3, elastic=(2, 3, 300))
    world.lose("demo-worker-1")
    world.reconcile()
    for _ in range(10):  # the replacement is slow to start: Rescaling for ten minutes
        assert world.reconcile().phase is JobPhase.RESCALING
    world.lose("demo-worker-2")
    assert world.reconcile().phase is JobPhase.RESCALING
    assert world.conditions()["Running"] == ("True", Reason.BELOW_MIN_REPLICAS)
    dropped = world.now
    while world.now < dropped + timedelta(seconds=240):
        assert world.reconcile().phase is JobPhase.RESCALING, world.now - dropped
    assert world.reconcile().phase is JobPhase.PENDING  # five minutes after the drop
    assert world.now == dropped + timedelta(seconds=300)
    assert world.resizes() == [(3, 2, Reason.WORKER_LOST), (2, 1, Reason.WORKER_LOST)]
