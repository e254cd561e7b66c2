"""Write ``<export_dir>/final``: config.json, model.safetensors and the tokenizer files.

Every rank of one replica group writes the slices its shards hold (torch DCP's distributed Hugging
Face writer, ``HuggingFaceStorageWriter(save_distributed=True)``), so no rank gathers the whole
model; DCP's consolidation then joins the slices into whole tensors, file to file, without holding
the model in memory. Tied weights are written once (under the first name, as ``save_pretrained``
does), so ``AutoModelForCausalLM.from_pretrained`` loads the directory as it is. The directory
appears whole: it is written under a temporary name and renamed. The ranks of the group must share
the export location's file system (they do: a group is one pod, or a shared volume across its pods).

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
import torch.distributed as dist
from torch.distributed.checkpoint.hf_storage import HuggingFaceStorageWriter
from torch.distributed.checkpoint.state_dict import get_model_state_dict
from torch.distributed.checkpoint.state_dict_saver import save as dcp_save

from elastrain_trainer.config import TrainerConfig
from elastrain_trainer.models import BuiltModel
from elastrain_trainer.models.huggingface import TOKENIZER_FILES
from elastrain_trainer.models.pretrained import tied_names

#: The exported directory's name under export_dir.
EXPORT_NAME = "final"
#: Largest weights file (as ``save_pretrained``'s default max_shard_size, 5 GB); more go in several files.
MAX_FILE_BYTES = 5 * 10**9
#: The weights file of a one-file export (what ``save_pretrained`` names it).
WEIGHTS_FILE = "model.safetensors"
#: What DCP names the only consolidated file, and the index it writes next to the files.
CONSOLIDATED_FILE = "model-00001-of-00001.safetensors"
INDEX_FILE = "model.safetensors.index.json"
#: The subdirectory DCP writes the ranks' slices to before consolidating them.
SLICES_DIR = "sharded"


def exported_state(built: BuiltModel) -> dict[str, torch.Tensor]:
    """This rank's view of the weights to write: sharded (DTensor) or whole tensors, tied aliases left out."""
    tied = tied_names(built.module)
    state = get_model_state_dict(built.module)
    return {k: v for k, v in state.items() if isinstance(v, torch.Tensor) and k not in tied}


def plan_files(state: dict[str, torch.Tensor], max_file_bytes: int) -> dict[str, int]:
    """Tensor name -> weights file (1..N): in order, a new file when the next tensor would pass ``max_file_bytes``.

    Sizes are the whole tensors' (a sharded tensor counts its global shape), so every rank plans alike.
    """
    mapping: dict[str, int] = {}
    index, used = 1, 0
    for name, tensor in state.items():
        size = tensor.numel() * tensor.element_size()
        if used and used + size > max_file_bytes:
            index, used = index + 1, 0
        mapping[name] = index
        used += size
    return mapping


def write_weights(
    built: BuiltModel,
    tmp: Path,
    *,
    rank: int,
    process_group: dist.ProcessGroup | None = None,
    max_file_bytes: int = MAX_FILE_BYTES,
) -> None:
    """Every rank writes its slices under ``tmp``; rank 0 leaves the weights files (a collective).

    One file is named ``model.safetensors``; several are ``model-0000i-of-0000N.safetensors`` with
    ``model.safetensors.index.json``, as ``save_pretrained`` writes them.
    """
    if rank == 0:
        shutil.rmtree(tmp, ignore_errors=True)
        (tmp / SLICES_DIR).mkdir(parents=True, exist_ok=True)
    if dist.is_available() and dist.is_initialized():
        # The other ranks' writer creates its directories as it is set up: not before rank 0 cleaned them.
        dist.barrier(group=process_group)
    state = exported_state(built)
    writer = HuggingFaceStorageWriter(
        str(tmp),
        fqn_to_index_mapping=plan_files(state, max_file_bytes),
        save_distributed=True,
        enable_consolidation=True,
    )
    dcp_save(state, storage_writer=writer, process_group=process_group)
    if rank != 0:
        return
    shutil.rmtree(tmp / SLICES_DIR)
    if (tmp / CONSOLIDATED_FILE).is_file():  # one file: the name save_pretrained gives it, no index
        (tmp / CONSOLIDATED_FILE).rename(tmp / WEIGHTS_FILE)
        (tmp / INDEX_FILE).unlink(missing_ok=True)


def write_metadata(tmp: Path, *, built: BuiltModel, cfg: TrainerConfig, dtype: torch.dtype) -> None:
    """config.json and the tokenizer files (Hugging Face architectures), or elastrain_model.json."""
    if built.export is not None:
        config: Any = built.export.config
        config.use_cache = True
        config.dtype = str(dtype).removeprefix("torch.")
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


def export_model(
    built: BuiltModel,
    directory: str,
    *,
    rank: int,
    cfg: TrainerConfig,
    process_group: dist.ProcessGroup | None = None,
    max_file_bytes: int = MAX_FILE_BYTES,
    name: str = EXPORT_NAME,
) -> str | None:
    """Every rank of the group writes its slices of ``<directory>/<name>`` (``final`` by default, ``step-<N>``
    on request); rank 0 finishes it and returns its path."""
    target = Path(directory) / name
    tmp = target.with_name(target.name + ".tmp")
    write_weights(built, tmp, rank=rank, process_group=process_group, max_file_bytes=max_file_bytes)
    if rank != 0:
        return None
    dtype = next(iter(built.module.parameters())).dtype
    write_metadata(tmp, built=built, cfg=cfg, dtype=dtype)
    if target.exists():
        shutil.rmtree(target)
    tmp.rename(target)
    return str(target)
