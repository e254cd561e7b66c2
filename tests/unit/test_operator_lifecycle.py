"""Whole lifecycles, round by round, in memory: decide -> apply to a dict of pods -> compute_status -> events.

The same loop as the handler's reconcile, with the cluster replaced by a dict the test edits between
rounds (a pod starts, fails, is evicted). No mocks, no sleeps: each round is one minute later.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from elastrain_operator.api import JobPhase, Reason, Role, TrainingJob, TrainingJobStatus
from elastrain_operator.builders.names import head_pod_name, worker_pod_name
from elastrain_operator.reconcile.decide import CreatePod, CreateService, DeleteJob, DeletePod, decide
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
    status: TrainingJobStatus | None = None
    events: list[tuple[str, Reason, str]] = field(default_factory=list)
    deleted: bool = False
    created: list[str] = field(default_factory=list)
    now: datetime = T0

    def observed(self) -> Observed:
        return Observed(tuple(self.pods.values()), self.service)

    def reconcile(self) -> TrainingJobStatus:
        """One round, one minute after the last one."""
        self.now += timedelta(minutes=1)
        decision = decide(self.job, self.status, self.observed(), self.now)
        for action in decision.actions:
            if isinstance(action, CreateService):
                self.service = True
            elif isinstance(action, CreatePod):
                name = head_pod_name("demo") if action.role is Role.HEAD else worker_pod_name("demo", action.index)
                assert name not in self.pods, f"{name} created twice"
                self.pods[name] = ObservedPod(name=name, role=action.role, index=action.index, phase="Pending")
                self.created.append(name)
            elif isinstance(action, DeletePod):
                self.pods.pop(action.name, None)
            elif isinstance(action, DeleteJob):
                self.deleted = True
        new = compute_status(self.job, self.status, decision, self.observed(), self.now)
        self.events += [(n.type, n.reason, n.message) for n in transition_notes(self.status, decision)]
        self.status = new
        return new

    def start(self, *names: str) -> None:
        """The kubelet: the pods run and turn ready."""
        for name in names or tuple(self.pods):
            self.pods[name] = replace(self.pods[name], phase="Running", ready=True)

    def set(self, name: str, **fields: Any) -> None:
        self.pods[name] = replace(self.pods[name], **fields)


def test_create_run_lose_a_worker_recover_and_succeed(make_job: MakeJob) -> None:
    world = World(make_job(replicas=3, elastic=(2, 3), restart_policy="OnFailure", backoff_limit=1, ttl=120).obj())

    assert world.reconcile().phase is JobPhase.PENDING
    assert world.service
    assert sorted(world.pods) == ["demo-head", "demo-worker-0", "demo-worker-1", "demo-worker-2"]
    start = world.status.start_time if world.status else None

    world.start()
    assert world.reconcile().phase is JobPhase.RUNNING

    world.set("demo-worker-1", phase="Failed", ready=False, exit_code=1, reason="Error")
    status = world.reconcile()
    assert status.phase is JobPhase.RESCALING  # two of three workers still train
    assert status.restarts is not None and status.restarts.application == 1
    assert "demo-worker-1" not in world.pods

    status = world.reconcile()  # the replacement is created, and the failure is not counted twice
    assert status.restarts is not None and status.restarts.application == 1
    assert world.created.count("demo-worker-1") == 2
    world.start("demo-worker-1")
    assert world.reconcile().phase is JobPhase.RUNNING

    world.set("demo-worker-2", phase="Failed", ready=False, exit_code=137, reason="OOMKilled")
    status = world.reconcile()
    assert status.restarts is not None and (status.restarts.application, status.restarts.infrastructure) == (1, 0)
    world.reconcile()
    world.start("demo-worker-2")
    assert world.reconcile().phase is JobPhase.RUNNING

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

    phases = [m.split(":")[0] for _, _, m in world.events if " -> " in m]
    assert phases == [
        "new -> Pending",
        "Pending -> Running",
        "Running -> Rescaling",
        "Rescaling -> Running",
        "Running -> Rescaling",
        "Rescaling -> Running",
        "Running -> Succeeded",
    ]
    warnings = [(reason, message) for kind, reason, message in world.events if kind == "Warning"]
    assert [r for r, _ in warnings] == [Reason.APPLICATION_ERROR, Reason.WORKER_LOST]
    assert "demo-worker-1 failed with exit code 1" in warnings[0][1]
    assert "exit code 137 (OOMKilled)" in warnings[1][1]


def test_backoff_limit_counts_failures_across_rounds(make_job: MakeJob) -> None:
    world = World(make_job(replicas=1, restart_policy="OnFailure", backoff_limit=2).obj())
    world.reconcile()
    for attempt in (1, 2, 3):
        world.start()
        assert world.reconcile().phase is JobPhase.RUNNING
        world.set("demo-worker-0", phase="Failed", ready=False, exit_code=3)
        status = world.reconcile()
        assert status.restarts is not None and status.restarts.application == attempt
        if attempt <= 2:
            assert status.phase is not JobPhase.FAILED
            world.reconcile()  # recreate the worker
    assert world.status is not None and world.status.phase is JobPhase.FAILED
    failed = {c.type: c for c in world.status.conditions or []}["Failed"]
    assert failed.reason == Reason.BACKOFF_LIMIT_EXCEEDED
    assert "3 application failures, more than runPolicy.backoffLimit 2" in (failed.message or "")
    assert world.created.count("demo-worker-0") == 3
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
    assert sorted(world.pods) == ["demo-head", "demo-worker-0", "demo-worker-1"]
    assert {c.type: c for c in status.conditions or []}["Suspended"].status == "False"
    world.start()
    assert world.reconcile().phase is JobPhase.RUNNING
    assert ("Normal", Reason.SUSPENDED) in [(k, r) for k, r, _ in world.events]


def test_scale_up_blocked_then_scale_down(make_job: MakeJob) -> None:
    wrapper = make_job(replicas=2, elastic=(1, 4))
    world = World(wrapper.obj())
    world.reconcile()
    world.start()
    world.reconcile()

    world.job = wrapper.replicas(4).obj()
    world.reconcile()
    world.start("demo-worker-2")
    world.set("demo-worker-3", unschedulable="0/4 nodes are available")
    status = world.reconcile()
    conditions = {c.type: c for c in status.conditions or []}
    assert status.phase is JobPhase.RESCALING
    assert conditions["ScaleUpBlocked"].status == "True"
    assert status.workers is not None and (status.workers.desired, status.workers.ready) == (4, 3)

    world.job = wrapper.replicas(2).obj()
    status = world.reconcile()
    assert sorted(world.pods) == ["demo-head", "demo-worker-0", "demo-worker-1"]
    assert status.phase is JobPhase.RESCALING  # decided on the pods as they were: 3 ready, moving to 2
    status = world.reconcile()
    assert status.phase is JobPhase.RUNNING
    assert {c.type: c for c in status.conditions or []}["ScaleUpBlocked"].status == "False"
    assert [(r.from_, r.to, r.reason) for r in status.resizes or []] == [
        (2, 4, Reason.SCALED_UP),
        (4, 2, Reason.SCALED_DOWN),
    ]
