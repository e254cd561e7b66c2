"""Pretrained safetensors loaded straight into each rank's shards (torch DCP's Hugging Face reader).

Every rank reads only the slices its shards hold, so no rank materialises the whole model and the
same files load into any world size. Tied weights (``lm_head`` sharing the embedding) are absent
from the files and are filled through the parameter they share.
"""

from __future__ import annotations

import torch.distributed as dist
from torch import nn
from torch.distributed.checkpoint.hf_storage import HuggingFaceStorageReader
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict, set_model_state_dict
from torch.distributed.checkpoint.state_dict_loader import load as dcp_load

from elastrain_trainer.errors import SpecError

FIELD = "spec.trainer.model.huggingface.path"


def tied_names(module: nn.Module) -> dict[str, str]:
    """Parameter names that share another's storage -> the first name of that parameter."""
    first: dict[int, str] = {}
    tied: dict[str, str] = {}
    for name, param in module.named_parameters(remove_duplicate=False):
        clean = name.replace("_checkpoint_wrapped_module.", "")
        if id(param) in first:
            tied[clean] = first[id(param)]
        else:
            first[id(param)] = clean
    return tied


def load_pretrained(module: nn.Module, path: str, *, process_group: dist.ProcessGroup | None = None) -> int:
    """Fill ``module``'s (sharded) parameters from the safetensors in ``path``; returns tensors loaded."""
    reader = HuggingFaceStorageReader(path)
    in_file = set(reader.read_metadata().state_dict_metadata)
    state = get_model_state_dict(module)
    tied = tied_names(module)
    missing = sorted(k for k in state if k not in in_file and not (k in tied and tied[k] in in_file))
    if missing:
        raise SpecError(
            FIELD,
            path,
            f"the safetensors lack {len(missing)} tensors of the architecture (e.g. {', '.join(missing[:3])})",
            "point path at the directory save_pretrained wrote for this very config",
        )
    wanted = {k: v for k, v in state.items() if k in in_file}
    try:
        dcp_load(wanted, storage_reader=HuggingFaceStorageReader(path), process_group=process_group)
    except Exception as err:  # shape or dtype mismatches surface as DCP's CheckpointException
        raise SpecError(FIELD, path, f"the weights do not fit the architecture: {err}", "check config.json") from err
    set_model_state_dict(module, wanted, options=StateDictOptions(strict=False))
    return len(wanted)
