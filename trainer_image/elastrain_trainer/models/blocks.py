"""Finding a model's repeated blocks (the FSDP units) without knowing its class.

Hugging Face models name them in ``_no_split_modules`` (``LlamaDecoderLayer``, ``GPT2Block``, ...);
the blocks are the outermost submodules of those classes, in module order.
"""

from __future__ import annotations

from collections.abc import Collection

from torch import nn


def find_blocks(module: nn.Module, class_names: Collection[str]) -> list[nn.Module]:
    """The outermost submodules of ``module`` whose class name is in ``class_names``, in module order."""
    names = set(class_names)
    found: list[nn.Module] = []
    inside: list[str] = []
    for fqn, sub in module.named_modules():
        if sub is module:
            continue
        if any(fqn.startswith(prefix + ".") for prefix in inside):
            continue
        if type(sub).__name__ in names:
            found.append(sub)
            inside.append(fqn)
    return found


def replace_submodule(root: nn.Module, old: nn.Module, new: nn.Module) -> None:
    """Put ``new`` where ``old`` sits in ``root`` (e.g. a block wrapped for activation checkpointing)."""
    for parent in root.modules():
        for name, child in parent.named_children():
            if child is old:
                parent.register_module(name, new)
                return
    raise ValueError(f"{type(old).__name__} is not a submodule of {type(root).__name__}")
