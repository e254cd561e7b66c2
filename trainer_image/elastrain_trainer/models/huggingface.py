"""Source ``huggingface``: any ``transformers`` causal LM, built on the meta device from a config or a model directory.

The blocks are found from the class's ``_no_split_modules`` (the decoder layers); the forward
returns ``.logits``; initialisation is the architecture's own ``_init_weights`` per submodule (the
one ``initialize_weights`` applies, run unit by unit once the shards are materialised, see
:mod:`.materialize`); with ``weights: true`` the directory's safetensors are loaded into the shards
afterwards (:mod:`.pretrained`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from elastrain_trainer.config import ModelConfig
from elastrain_trainer.errors import SpecError
from elastrain_trainer.models.blocks import find_blocks
from elastrain_trainer.models.built import BuiltModel, HFExport, InitFn

FIELD = "spec.trainer.model.huggingface"
#: Files of a Hugging Face tokenizer directory (copied on export).
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.json",
    "merges.txt",
    "tokenizer.model",
    "added_tokens.json",
)


def has_tokenizer(directory: str | Path) -> bool:
    """True when ``directory`` holds a Hugging Face tokenizer (tokenizer.json or a vocabulary)."""
    return any((Path(directory) / name).is_file() for name in ("tokenizer.json", "vocab.json", "tokenizer.model"))


def load_hf_config(cfg: ModelConfig) -> Any:
    """The ``PretrainedConfig`` from the inline config or the model directory; SpecError naming the field."""
    from transformers import AutoConfig

    hf = cfg.huggingface
    assert hf is not None, "source huggingface without a huggingface section (the config rules forbid it)"
    if hf.config is not None:
        fields = dict(hf.config)
        model_type = fields.pop("model_type", None)
        if not isinstance(model_type, str):
            raise SpecError(
                f"{FIELD}.config.model_type",
                model_type,
                "the inline config has no model_type, so no architecture can be chosen",
                "add model_type (e.g. llama, qwen2, qwen3, mistral, gpt2) as in the model's config.json",
            )
        try:
            config = AutoConfig.for_model(model_type, **fields)
        except (ValueError, TypeError, KeyError) as err:
            raise SpecError(
                f"{FIELD}.config", model_type, f"transformers cannot build this config: {err}", "fix the config fields"
            ) from err
    else:
        path = Path(str(hf.path))
        if not (path / "config.json").is_file():
            raise SpecError(
                f"{FIELD}.path",
                path,
                "no config.json in this directory (missing, not mounted, or not a model directory)",
                "mount the model directory in the pod (e.g. a PVC under spec.volumes) and point path at the "
                "directory holding config.json",
            )
        try:
            config = AutoConfig.from_pretrained(str(path))
        except (OSError, ValueError, KeyError) as err:
            raise SpecError(f"{FIELD}.path", path, f"config.json cannot be read: {err}", "fix config.json") from err
        if hf.weights and not any(path.glob("*.safetensors")):
            raise SpecError(
                f"{FIELD}.path",
                path,
                "weights is true but the directory has no *.safetensors files",
                "save the model with save_pretrained(safe_serialization=True), or set weights: false",
            )
    positions = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
    if isinstance(positions, int) and positions < cfg.seq_len:
        raise SpecError(
            "spec.trainer.model.seqLen",
            cfg.seq_len,
            f"the model has {positions} positions, fewer than seqLen",
            f"set seqLen to at most {positions}",
        )
    if int(config.vocab_size) < cfg.vocab_size:
        raise SpecError(
            "spec.trainer.model.vocabSize",
            cfg.vocab_size,
            f"the data's token ids run up to vocabSize but the model has only {config.vocab_size} tokens",
            f"set vocabSize to at most {config.vocab_size}",
        )
    config.use_cache = False
    return config


def build_init(module: nn.Module) -> InitFn:
    """The architecture's own initialisation of one submodule (weights, rotary tables).

    As ``initialize_weights`` does, a submodule is initialised by the innermost ``PreTrainedModel``
    that contains it (a composite model's parts keep their own schemes).
    """
    from transformers import PreTrainedModel

    owners: dict[int, Any] = {}

    def assign(sub: nn.Module, owner: Any) -> None:
        owner = sub if isinstance(sub, PreTrainedModel) else owner
        owners[id(sub)] = owner
        for child in sub.children():
            assign(child, owner)

    assign(module, module)

    def init(sub: nn.Module) -> None:
        owners.get(id(sub), module)._init_weights(sub)

    return init


def hf_forward(module: nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    logits: torch.Tensor = module(input_ids=tokens, use_cache=False).logits
    return logits


def build_huggingface(cfg: ModelConfig, *, tokenizer_dir: str | None = None) -> BuiltModel:
    """The causal LM on the meta device; ``tokenizer_dir`` (the data's tokenizer) is what export copies."""
    from transformers import AutoModelForCausalLM

    hf = cfg.huggingface
    assert hf is not None
    config = load_hf_config(cfg)
    with torch.device("meta"):
        module = AutoModelForCausalLM.from_config(  # type: ignore[no-untyped-call]
            config, attn_implementation="sdpa", dtype=torch.float32
        )
    block_names = getattr(module, "_no_split_modules", None) or []
    blocks = find_blocks(module, block_names)
    if not blocks:
        raise SpecError(
            FIELD,
            type(module).__name__,
            f"no repeated blocks found (the class names {block_names} in _no_split_modules match no submodule)",
            "use an architecture whose transformers class lists its decoder layer in _no_split_modules, "
            "or source: python with your own block list",
        )
    if tokenizer_dir is None and hf.path is not None and has_tokenizer(hf.path):
        tokenizer_dir = hf.path
    return BuiltModel(
        module=module,
        blocks=blocks,
        vocab_size=int(config.vocab_size),
        forward=hf_forward,
        init=build_init(module),
        pretrained=hf.path if hf.weights else None,
        export=HFExport(config=config, tokenizer_dir=tokenizer_dir),
    )
