"""Read the trainer section (and the runtime settings local mode needs) from a TrainingJob manifest.

Accepts a TrainingJob (``kind: TrainingJob``, trainer under ``spec.trainer``) or a bare trainer
config. The operator's API model is not imported: local mode reads the few runtime fields it
needs from the raw spec and validates the trainer section with the trainer's own model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from elastrain_trainer.config import TrainerConfig

#: Local-mode defaults when the manifest does not say.
DEFAULT_PODS = 2
DEFAULT_RANKS_PER_POD = 2


@dataclass(frozen=True)
class LocalJob:
    trainer: TrainerConfig
    pods: int
    ranks_per_pod: int
    checkpoint_dir: str | None
    checkpoint_interval: int
    checkpoint_keep: int
    async_checkpoint: bool
    name: str
    checkpoint_max_failures: int = 0
    """spec.checkpoint.maxConsecutiveFailures: saves failing in a row before the run stops (0: never)."""


def _path_of(uri: str) -> str:
    return uri.removeprefix("file://")


def load_manifest(path: str | Path) -> LocalJob:
    raw: Any = yaml.safe_load(Path(path).read_text())
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a TrainingJob or a trainer config mapping, got {type(raw).__name__}")
    if raw.get("kind") == "TrainingJob":
        spec: dict[str, Any] = raw.get("spec") or {}
        checkpoint: dict[str, Any] = spec.get("checkpoint") or {}
        uri = checkpoint.get("uri") or checkpoint.get("path")
        return LocalJob(
            trainer=TrainerConfig.model_validate(spec.get("trainer") or {}),
            pods=int(spec.get("replicas", DEFAULT_PODS)),
            ranks_per_pod=int(spec.get("acceleratorsPerWorker", DEFAULT_RANKS_PER_POD)),
            checkpoint_dir=_path_of(str(uri)) if uri else None,
            checkpoint_interval=int(checkpoint.get("intervalSteps", 0)),
            checkpoint_keep=int(checkpoint.get("keep", 3)),
            async_checkpoint=bool(checkpoint.get("async", True)),
            name=str((raw.get("metadata") or {}).get("name", Path(path).stem)),
            checkpoint_max_failures=int(checkpoint.get("maxConsecutiveFailures", 0)),
        )
    return LocalJob(
        trainer=TrainerConfig.model_validate(raw),
        pods=DEFAULT_PODS,
        ranks_per_pod=DEFAULT_RANKS_PER_POD,
        checkpoint_dir=None,
        checkpoint_interval=0,
        checkpoint_keep=3,
        async_checkpoint=True,
        name=Path(path).stem,
    )
