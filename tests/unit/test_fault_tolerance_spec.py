"""spec.faultTolerance: its defaults, the pods' contract carries it, and the driver's options follow it.

(Its bounds and cross-field rules are cases of tests/data/trainingjob_invalid.yaml, checked by the parser's
unit test and by the real API server in the cluster tier.)
"""

from __future__ import annotations

from tests.unit.conftest import MakeJob
from tests.unit.test_operator_builders import literal_env

from elastrain_operator.api import Role
from elastrain_operator.builders.pods import build_head_pod
from elastrain_trainer.config import FaultToleranceConfig
from elastrain_trainer.config.podenv import PodEnv, read_pod_env
from elastrain_trainer.driver.lighthouse import LighthouseOptions
from elastrain_trainer.driver.options import DriverOptions, apply_fault_tolerance

CUSTOM = {
    "hangFactor": 4,
    "hangFloorSeconds": 5,
    "hangStartupSeconds": 30,
    "heartbeatTimeoutSeconds": 0.5,
    "quorumTimeoutSeconds": 90,
    "collectiveTimeoutSeconds": 20,
    "stepTimeoutSeconds": 300,
}


def test_defaults_are_the_documented_ones(make_job: MakeJob) -> None:
    spec = make_job().obj().spec.fault_tolerance
    assert spec == FaultToleranceConfig()
    assert (spec.hang_factor, spec.hang_floor_seconds, spec.hang_startup_seconds) == (10.0, 10.0, 60.0)
    assert (spec.heartbeat_timeout_seconds, spec.quorum_timeout_seconds) == (1.0, 120.0)
    assert (spec.collective_timeout_seconds, spec.step_timeout_seconds) == (30.0, 120.0)


def test_the_head_pods_contract_carries_it(make_job: MakeJob) -> None:
    job = make_job(fault_tolerance=CUSTOM).obj()
    env = literal_env(build_head_pod(job))
    assert PodEnv.FAULT_TOLERANCE.value in env
    contract = read_pod_env(env)
    assert contract.role == Role.HEAD.value
    assert contract.fault_tolerance == job.spec.fault_tolerance == FaultToleranceConfig.model_validate(CUSTOM)


def test_driver_options_follow_it() -> None:
    base = DriverOptions(lighthouse=LighthouseOptions(host="10.0.0.1", port=29510), max_step_errors=3)
    options = apply_fault_tolerance(base, FaultToleranceConfig.model_validate(CUSTOM))
    assert (options.hang.factor, options.hang.floor_seconds, options.hang.startup_seconds) == (4.0, 5.0, 30.0)
    assert options.hang.warmup_steps == base.hang.warmup_steps
    assert (options.timeouts.collective_seconds, options.timeouts.quorum_seconds) == (20.0, 90.0)
    assert options.timeouts.connect_seconds == base.timeouts.connect_seconds
    assert options.lighthouse == LighthouseOptions(host="10.0.0.1", port=29510, heartbeat_timeout_ms=500)
    assert options.step_timeout_seconds == 300.0
    assert options.max_step_errors == 3


def test_product_defaults_change_nothing_the_driver_had() -> None:
    base = DriverOptions()
    options = apply_fault_tolerance(base, FaultToleranceConfig())
    assert options == base
