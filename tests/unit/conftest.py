"""Fixture builders for the operator's unit tests, in the style of Kubeflow Trainer's wrappers.

``make_job(...)`` returns a :class:`JobWrapper`: a valid TrainingJob manifest with fluent setters
(``make_job().replicas(3).elastic(1, 4).obj()``); keyword arguments call the setters of the same
name, so tables can hold plain dicts (``make_job(replicas=3, elastic=(1, 4))``). ``obj()`` goes
through ``parse_trainingjob``, so every fixture is a manifest the operator would accept.

``pod(role, index, ...)`` returns an ObservedPod named as the builders name it; ``observe(...)``
wraps pods into an Observed (the head Service and the NetworkPolicy exist unless told otherwise).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any, Self

import pytest

from elastrain_operator.api import Role, TrainingJob, parse_trainingjob
from elastrain_operator.builders.names import head_pod_name, worker_pod_name
from elastrain_operator.reconcile.observed import Observed, ObservedPod

JOB_NAME = "demo"
NAMESPACE = "ml"
UID = "3f1c9a52-0000-4000-8000-000000000001"


class JobWrapper:
    """A TrainingJob under construction; every setter returns the wrapper, ``obj()`` the parsed job."""

    def __init__(self, name: str = JOB_NAME, namespace: str = NAMESPACE) -> None:
        self._manifest: dict[str, Any] = {
            "apiVersion": "elastrain.dev/v1alpha1",
            "kind": "TrainingJob",
            "metadata": {"name": name, "namespace": namespace, "uid": UID, "generation": 1},
            "spec": {
                "image": "registry.example/elastrain/trainer:1",
                "replicas": 2,
                "acceleratorsPerWorker": 8,
                "trainer": {"steps": 100, "globalBatchSize": 4096, "data": {"numShards": 256}},
            },
        }

    @property
    def _spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = self._manifest["spec"]
        return spec

    def _run_policy(self) -> dict[str, Any]:
        policy: dict[str, Any] = self._spec.setdefault("runPolicy", {})
        return policy

    def generation(self, value: int) -> Self:
        self._manifest["metadata"]["generation"] = value
        return self

    def uid(self, value: str) -> Self:
        self._manifest["metadata"]["uid"] = value
        return self

    def replicas(self, value: int) -> Self:
        self._spec["replicas"] = value
        return self

    def elastic(self, bounds: tuple[int, int] | tuple[int, int, int]) -> Self:
        """``(min, max)`` or ``(min, max, belowMinGraceSeconds)``."""
        low, high, *grace = bounds
        self._spec["elastic"] = {"minReplicas": low, "maxReplicas": high}
        if grace:
            self._spec["elastic"]["belowMinGraceSeconds"] = grace[0]
        return self

    def device(self, value: str) -> Self:
        self._spec["device"] = value
        return self

    def accelerators(self, value: int) -> Self:
        self._spec["acceleratorsPerWorker"] = value
        return self

    def steps(self, value: int) -> Self:
        self._spec["trainer"]["steps"] = value
        return self

    def backoff_limit(self, value: int) -> Self:
        self._run_policy()["backoffLimit"] = value
        return self

    def restart_policy(self, value: str) -> Self:
        self._run_policy()["restartPolicy"] = value
        return self

    def retryable_exit_codes(self, codes: list[int]) -> Self:
        self._run_policy()["retryableExitCodes"] = list(codes)
        return self

    def suspend(self, value: bool = True) -> Self:
        self._run_policy()["suspend"] = value
        return self

    def deadline(self, seconds: int | None) -> Self:
        if seconds is not None:
            self._run_policy()["activeDeadlineSeconds"] = seconds
        return self

    def ttl(self, seconds: int | None) -> Self:
        if seconds is not None:
            self._run_policy()["ttlSecondsAfterFinished"] = seconds
        return self

    def checkpoint_uri(self, uri: str, *, interval_steps: int = 10, keep: int = 2) -> Self:
        self._spec["checkpoint"] = {"uri": uri, "intervalSteps": interval_steps, "keep": keep}
        return self

    def export(self, value: dict[str, Any]) -> Self:
        """``spec.export`` in its camelCase manifest form."""
        self._spec["export"] = copy.deepcopy(value)
        return self

    def checkpoint_pvc(self, claim: str, path: str = "/", *, interval_steps: int = 10) -> Self:
        self._spec["checkpoint"] = {"pvc": {"claimName": claim, "path": path}, "intervalSteps": interval_steps}
        return self

    def scheduling(self, value: dict[str, Any]) -> Self:
        """``spec.scheduling`` in its camelCase manifest form."""
        self._spec["scheduling"] = copy.deepcopy(value)
        return self

    def pod(self, value: dict[str, Any]) -> Self:
        """``spec.pod`` in its camelCase manifest form."""
        self._spec["pod"] = copy.deepcopy(value)
        return self

    def fault_tolerance(self, value: dict[str, Any]) -> Self:
        """``spec.faultTolerance`` in its camelCase manifest form."""
        self._spec["faultTolerance"] = copy.deepcopy(value)
        return self

    def manifest(self) -> dict[str, Any]:
        return copy.deepcopy(self._manifest)

    def obj(self) -> TrainingJob:
        return parse_trainingjob(self._manifest)


MakeJob = Callable[..., JobWrapper]
MakePod = Callable[..., ObservedPod]
MakeObserved = Callable[..., Observed]


@pytest.fixture
def make_job() -> MakeJob:
    """``make_job(name=..., namespace=..., **setters)``: a JobWrapper with the named setters applied."""

    def build(name: str = JOB_NAME, namespace: str = NAMESPACE, **setters: Any) -> JobWrapper:
        wrapper = JobWrapper(name, namespace)
        for setter, value in setters.items():
            getattr(wrapper, setter)(value)
        return wrapper

    return build


def make_pod(
    role: str,
    index: int = 0,
    *,
    phase: str = "Running",
    ready: bool | None = None,
    job: str = JOB_NAME,
    **fields: Any,
) -> ObservedPod:
    """An ObservedPod as the kube layer reports it; ``ready`` defaults to phase == Running.

    Named as the builders name it, attempt included (``attempt=1`` -> ``demo-worker-0-r1``).
    """
    kind = Role(role)
    attempt = fields.get("attempt", 0)
    name = head_pod_name(job, attempt) if kind is Role.HEAD else worker_pod_name(job, index, attempt)
    return ObservedPod(
        name=name,
        role=kind,
        index=index,
        phase=phase,
        ready=phase == "Running" if ready is None else ready,
        **fields,
    )


@pytest.fixture
def pod() -> MakePod:
    """``pod("head")``, ``pod("worker", 2, phase="Failed", exit_code=1)``: see :func:`make_pod`."""
    return make_pod


@pytest.fixture
def observe() -> MakeObserved:
    """``observe(*pods, service=True)``: what the operator sees of a job."""

    def build(*pods: ObservedPod, service: bool = True) -> Observed:
        return Observed(pods=tuple(pods), service_exists=service, network_policy_exists=service)

    return build
