"""Write ``<export_dir>/final``: config.json, model.safetensors and the tokenizer files.

Every rank of one replica group takes part in gathering the full state dict (DCP's state-dict
API, offloaded to rank 0's CPU); only rank 0 writes. Tied weights are written once (under the
first name, as ``save_pretrained`` does), so ``AutoModelForCausalLM.from_pretrained`` loads the
directory as it is. The directory appears whole: it is written under a temporary name and renamed.

Models without a Hugging Face architecture (source builtin, python) get elastrain's format: the
same ``model.safetensors`` (the module's parameter names) and ``elastrain_model.json`` (the
model section of the trainer config) instead of config.json; docs/models.md says so.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

from elastrain_trainer.config import TrainerConfig
from elastrain_trainer.models import BuiltModel
from elastrain_trainer.models.huggingface import TOKENIZER_FILES
from elastrain_trainer.models.pretrained import tied_names

#: The exported directory's name under export_dir.
EXPORT_NAME = "final"


def gather_full_state(built: BuiltModel) -> dict[str, torch.Tensor]:
    """The full (unsharded) state dict on rank 0's CPU; a collective over the group (other ranks get {})."""
    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    state = get_model_state_dict(built.module, options=options)
    return {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}


def write_model_dir(state: dict[str, torch.Tensor], target: Path, *, built: BuiltModel, cfg: TrainerConfig) -> Path:
    """Write the directory (atomically: a temporary sibling renamed into place); returns ``target``."""
    tied = tied_names(built.module)
    tensors = {k: v.detach().contiguous() for k, v in state.items() if k not in tied}
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file(tensors, str(tmp / "model.safetensors"), metadata={"format": "pt"})
    if built.export is not None:
        config: Any = built.export.config
        config.use_cache = True
        config.dtype = str(next(iter(tensors.values())).dtype).removeprefix("torch.")
        config.save_pretrained(str(tmp))
        tokenizer_dir = built.export.tokenizer_dir
        if tokenizer_dir is not None:
            for name in TOKENIZER_FILES:
                source = Path(tokenizer_dir) / name
                if source.is_file():
                    shutil.copy2(source, tmp / name)
    else:
        manifest = {"source": cfg.model.source, "model": cfg.model.model_dump(mode="json", by_alias=True)}
        (tmp / "elastrain_model.json").write_text(json.dumps(manifest, indent=2) + "\n")
    if target.exists():
        shutil.rmtree(target)
    tmp.rename(target)
    return target


def export_model(built: BuiltModel, directory: str, *, rank: int, cfg: TrainerConfig) -> str | None:
    """Gather (every rank of the group) and write ``<directory>/final`` (rank 0); rank 0 returns its path."""
    state = gather_full_state(built)
    if rank != 0:
        return None
    return str(write_model_dir(state, Path(directory) / EXPORT_NAME, built=built, cfg=cfg))
