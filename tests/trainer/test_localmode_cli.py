"""Local mode: the manifest reader, the CLI's arguments, the text loss curve, a bad data file refused in words."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from elastrain_trainer.cli import build_parser, main
from elastrain_trainer.curve import render_loss_curve
from elastrain_trainer.manifest import DEFAULT_PODS, load_manifest
from elastrain_trainer.metrics import StepMetrics

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_a_trainingjob_manifest_gives_trainer_pods_and_checkpoints() -> None:
    job = load_manifest(EXAMPLES / "cpu-tiny.yaml")
    assert (job.pods, job.ranks_per_pod, job.name) == (2, 2, "cpu-tiny")
    assert job.trainer.steps == 20 and job.trainer.model.seq_len == 64
    assert job.checkpoint_dir == "/tmp/elastrain/checkpoints/cpu-tiny"
    assert (job.checkpoint_interval, job.checkpoint_keep) == (10, 2)


def test_a_bare_trainer_config_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("steps: 7\nglobalBatchSize: 4\nlrSchedule: {warmupSteps: 1}\n")
    job = load_manifest(path)
    assert (job.trainer.steps, job.pods, job.checkpoint_dir) == (7, DEFAULT_PODS, None)


def test_an_invalid_trainer_section_is_refused_with_the_models_message(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("kind: TrainingJob\nspec:\n  trainer:\n    steps: 5\n    lrSchedule: {warmupSteps: 9}\n")
    with pytest.raises(ValidationError, match="warmupSteps must not exceed steps"):
        load_manifest(path)


def test_cli_arguments() -> None:
    args = build_parser().parse_args(
        ["train", "job.yaml", "--pods", "3", "--ranks-per-pod", "2", "--kill-pod-at", "5", "--add-pod-at", "9"]
    )
    assert (args.file, args.pods, args.ranks_per_pod, args.kill_pod_at, args.add_pod_at) == (
        "job.yaml",
        3,
        2,
        [5],
        [9],
    )


def _metric(step: int, loss: float, groups: int) -> StepMetrics:
    return StepMetrics(
        step=step,
        committed=True,
        loss=loss,
        tokens_per_second=1.0,
        step_seconds=0.1,
        compute_seconds=0.05,
        comm_seconds=0.05,
        groups=groups,
        world_size=2 * groups,
        wall_time=step * 0.1,
    )


def test_loss_curve_marks_resizes() -> None:
    metrics = [_metric(s, 4.0 - 0.1 * s, 2 if s < 5 or s > 7 else 1) for s in range(1, 11)]
    text = render_loss_curve(metrics, rows=10)
    lines = text.splitlines()
    assert len(lines) == 11
    assert [line.split()[1] for line in lines[1:] if "|" in line] == ["5", "8"]
    assert lines[1].count("#") > lines[-1].count("#")


def test_train_with_a_missing_token_file_exits_1_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "no_such_file.bin"
    path = tmp_path / "t.yaml"
    path.write_text(
        f"steps: 4\nglobalBatchSize: 4\nlrSchedule: {{warmupSteps: 1}}\ndata: {{source: file, path: {missing}}}\n"
    )
    assert main(["train", str(path), "--pods", "1", "--ranks-per-pod", "1"]) == 1
    err = capsys.readouterr().err
    assert f"spec.trainer.data.path: no such file in the pod (value: {missing})" in err, err
    assert "Traceback" not in err, err
