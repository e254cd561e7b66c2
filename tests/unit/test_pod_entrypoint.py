"""`elastrain pod head|worker`: the Ray commands a pod runs, and the refusals of a bad environment."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from elastrain_trainer.cli import main
from elastrain_trainer.config import TrainerConfig
from elastrain_trainer.config.podenv import (
    TERMINATION_LOG_ENV,
    TERMINATION_MESSAGE_MAX_BYTES,
    PodContract,
    write_pod_env,
)
from elastrain_trainer.driver.step_errors import StepFailureError
from elastrain_trainer.errors import SpecError
from elastrain_trainer.pod import termination
from elastrain_trainer.pod.head import (
    MAX_STEP_ERRORS_ENV,
    checkpoint_path,
    failure_message,
    max_step_errors,
    newest_checkpoint,
    newest_export,
)
from elastrain_trainer.pod.raynode import head_argv, node_ip, temp_dir_for, worker_argv
from elastrain_trainer.pod.termination import termination_log_path, write_termination_message


def contract(role: str = "worker", *, device: str = "cpu", pod_ip: str | None = "10.0.0.7") -> PodContract:
    return PodContract(
        job_name="j",
        namespace="ns",
        role=role,
        worker_index=None if role == "head" else 2,
        pod_name=f"j-{role}",
        pod_ip=pod_ip,
        head_address="j-head.ns.svc",
        min_workers=1,
        max_workers=4,
        accelerators_per_worker=4,
        device=device,
        trainer=TrainerConfig(),
    )


def _flags(argv: list[str]) -> dict[str, str]:
    return dict(a.removeprefix("--").split("=", 1) for a in argv if a.startswith("--") and "=" in a)


def test_the_head_runs_the_ray_head_on_its_pod_ip_and_the_contract_port(tmp_path: Path) -> None:
    argv = head_argv(contract("head"), tmp_path)
    assert argv[1:3] == ["start", "--head"] and "--block" in argv
    flags = _flags(argv)
    assert flags["node-ip-address"] == "10.0.0.7"
    assert flags["port"] == "6379"
    assert flags["temp-dir"] == str(tmp_path)
    assert flags["num-gpus"] == "0"


@pytest.mark.parametrize(("device", "gpus"), [("cpu", "0"), ("gpu", "4")])
def test_a_worker_joins_the_head_and_offers_one_worker_unit_per_rank(device: str, gpus: str, tmp_path: Path) -> None:
    argv = worker_argv(contract(device=device), tmp_path)
    assert "--head" not in argv and "--block" in argv
    flags = _flags(argv)
    assert flags["address"] == "j-head.ns.svc:6379"
    assert json.loads(flags["resources"]) == {"elastrain_worker": 4}
    assert flags["num-cpus"] == "4"
    assert flags["num-gpus"] == gpus


def test_each_pod_gets_a_short_temp_dir_of_its_own() -> None:
    first, second = temp_dir_for("job-worker-0"), temp_dir_for("job-worker-0-r1")
    assert first != second and first == temp_dir_for("job-worker-0")
    # Ray puts sockets at TEMP/session_<date>_<time>_<pid>/sockets/plasma_store: under 108 bytes.
    assert len(str(first)) + len("/session_2026-11-25_15-01-13_090217_28377/sockets/plasma_store") < 108


def test_a_pod_without_its_ip_is_told_where_it_comes_from() -> None:
    with pytest.raises(ValueError, match=r"ELASTRAIN_POD_IP .*status\.podIP"):
        node_ip(contract(pod_ip=None))


def test_checkpoint_locations_are_filesystem_paths() -> None:
    assert checkpoint_path("file:///shared/ckpt") == "/shared/ckpt"
    assert checkpoint_path("/checkpoints") == "/checkpoints"
    with pytest.raises(ValueError, match=r"s3://b/p.*spec\.checkpoint\.uri"):
        checkpoint_path("s3://b/p")


def test_a_pod_without_the_contract_exits_2_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    for name in write_pod_env(contract()):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ELASTRAIN_ROLE", "head")
    monkeypatch.setenv(TERMINATION_LOG_ENV, str(tmp_path / "termination-log"))
    assert main(["pod", "head"]) == 2
    err = capsys.readouterr().err
    assert "ELASTRAIN_JOB_NAME: Field required" in err and "ELASTRAIN_TRAINER_CONFIG" in err, err
    # The same words in the termination log, for the container status and the job's condition.
    assert (tmp_path / "termination-log").read_text() == " ".join(err.split())


def test_a_pod_running_the_other_roles_command_exits_2_saying_which_to_run(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in write_pod_env(contract("worker")).items():
        monkeypatch.setenv(name, value)
    assert main(["pod", "head"]) == 2
    assert "run `elastrain pod worker`" in capsys.readouterr().err


def test_the_termination_message_is_one_line_cut_to_what_the_kubelet_keeps(tmp_path: Path) -> None:
    path = tmp_path / "termination-log"
    env = {TERMINATION_LOG_ENV: str(path)}
    assert write_termination_message("trainer:\n  ValueError: bad\n", env)
    assert path.read_text() == "trainer: ValueError: bad"
    assert write_termination_message("é" * TERMINATION_MESSAGE_MAX_BYTES, env)
    written = path.read_bytes()
    assert len(written) <= TERMINATION_MESSAGE_MAX_BYTES and written.decode() == "é" * (len(written) // 2)


def test_outside_a_pod_no_termination_log_is_created(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(termination, "TERMINATION_LOG", str(tmp_path / "dev" / "termination-log"))
    assert termination_log_path({}) is None
    assert not write_termination_message("nowhere to go", {})
    assert not (tmp_path / "dev").exists()
    # Where the kubelet mounted the file, it is written.
    (tmp_path / "dev").mkdir()
    (tmp_path / "dev" / "termination-log").write_text("")
    assert write_termination_message("trainer: done", {})
    assert (tmp_path / "dev" / "termination-log").read_text() == "trainer: done"


def test_the_newest_checkpoint_is_the_highest_step_marked_latest() -> None:
    events = [
        {"kind": "checkpoint", "checkpoint_step": 4},
        {"kind": "group_lost", "step": 6},
        {"kind": "checkpoint", "checkpoint_step": 8},
        {"kind": "restored", "checkpoint_step": 12},
    ]
    assert newest_checkpoint(events) == 8
    assert newest_checkpoint([{"kind": "group_lost"}]) is None


def test_the_newest_export_is_the_highest_step_the_driver_exported() -> None:
    events = [
        {"kind": "checkpoint", "checkpoint_step": 4},
        {"kind": "exported", "path": "/export/step-4", "step": 4},
        {"kind": "exported", "path": "/export/final", "step": 9},
    ]
    assert newest_export(events) == ("/export/final", 9)
    assert newest_export(events[:1]) is None


def test_a_worded_error_is_quoted_as_it_is_any_other_with_its_type() -> None:
    spec = SpecError("spec.trainer.data.path", "/d/t.bin", "no such file in the pod", "mount it")
    assert failure_message(spec) == "spec.trainer.data.path: no such file in the pod (value: /d/t.bin); mount it"
    assert failure_message(StepFailureError("replica group steps failed 6 times")) == (
        "replica group steps failed 6 times"
    )
    assert failure_message(KeyError("x")) == "KeyError: 'x'"
    with pytest.raises(SpecError) as raised:
        checkpoint_path("s3://b/p")
    assert raised.value.field == "spec.checkpoint.uri"


@pytest.mark.parametrize(
    ("value", "limit"), [(None, 6), ("3", 3), ("0", 0), (" 12 ", 12), ("-1", 6), ("many", 6)],
    ids=["unset-default", "set", "zero-never", "spaces", "negative-ignored", "not-a-number-ignored"],
)  # fmt: skip
def test_the_crash_loop_limit_comes_from_the_pod_env(value: str | None, limit: int) -> None:
    env = {} if value is None else {MAX_STEP_ERRORS_ENV: value}
    assert max_step_errors(env) == limit
