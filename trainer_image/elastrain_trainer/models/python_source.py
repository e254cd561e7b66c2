"""Source ``python``: the user's own ``module:function`` (docs/models.md has the contract).

The function is called as ``function(model_cfg, **kwargs)`` with the job's
:class:`~elastrain_trainer.config.ModelConfig` and returns ``(module, blocks)`` or
``(module, blocks, loss)``: the ``nn.Module`` (built on the meta device for large models), the
list of its repeated blocks (submodules of it, the FSDP units) and optionally
``loss(logits, targets) -> summed loss``. ``module(tokens)`` must return logits (batch, seq, vocab).
A meta module is initialised after sharding by calling every submodule's ``reset_parameters()``,
innermost first, block by block and then the modules outside the blocks, so the root's own
``reset_parameters`` (if any) has the last word; it may re-initialise any parameter outside the blocks.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from torch import nn

from elastrain_trainer.config import ModelConfig
from elastrain_trainer.errors import SpecError
from elastrain_trainer.models.built import BuiltModel, LossFn, next_token_loss

FIELD = "spec.trainer.model.python.entrypoint"


def parse_entrypoint(entrypoint: str) -> tuple[str, str]:
    """``"pkg.mod:build"`` -> ``("pkg.mod", "build")``; SpecError naming the field otherwise."""
    module, sep, function = entrypoint.partition(":")
    parts = module.split(".")
    if not sep or not function.isidentifier() or not all(p.isidentifier() for p in parts):
        raise SpecError(FIELD, entrypoint, "not of the form module.path:function", "write e.g. mymodels.llama:build")
    return module, function


def resolve_entrypoint(entrypoint: str) -> Callable[..., Any]:
    """Import the module and return the function; SpecError naming the field when either is missing."""
    module_name, function_name = parse_entrypoint(entrypoint)
    try:
        module = importlib.import_module(module_name)
    except Exception as err:  # an import error in the user's code is a spec error too
        raise SpecError(
            FIELD,
            entrypoint,
            f"module {module_name} cannot be imported ({type(err).__name__}: {err})",
            "install the module in the trainer image (or put it on PYTHONPATH) and check it imports",
        ) from err
    function = getattr(module, function_name, None)
    if not callable(function):
        raise SpecError(
            FIELD, entrypoint, f"module {module_name} has no function {function_name}", "name a function of the module"
        )
    resolved: Callable[..., Any] = function
    return resolved


def check_result(result: Any, entrypoint: str) -> tuple[nn.Module, list[nn.Module], LossFn]:
    """Validate what the function returned against the contract; SpecError naming the field otherwise."""
    if not isinstance(result, tuple) or len(result) not in (2, 3):
        raise SpecError(
            FIELD,
            entrypoint,
            f"the function returned {type(result).__name__}, not (module, blocks) or (module, blocks, loss)",
            "return a tuple (nn.Module, list of its block modules[, loss(logits, targets)])",
        )
    module, blocks = result[0], result[1]
    loss = result[2] if len(result) == 3 else next_token_loss
    if not isinstance(module, nn.Module):
        raise SpecError(FIELD, entrypoint, f"the first element is a {type(module).__name__}", "return an nn.Module")
    owned = {id(m) for m in module.modules() if m is not module}
    if (
        not isinstance(blocks, (list, tuple, nn.ModuleList))
        or not blocks
        or not all(isinstance(b, nn.Module) and id(b) in owned for b in blocks)
    ):
        raise SpecError(
            FIELD,
            entrypoint,
            "the second element is not a non-empty list of submodules of the module",
            "return the module's repeated blocks (e.g. list(model.layers))",
        )
    if not callable(loss):
        raise SpecError(FIELD, entrypoint, "the third element is not callable", "return loss(logits, targets)")
    return module, list(blocks), loss


def reset_module(module: nn.Module) -> None:
    """Initialise one submodule of a materialised module: its ``reset_parameters()``, if it has one."""
    reset = getattr(module, "reset_parameters", None)
    if callable(reset):
        reset()


def build_python(cfg: ModelConfig) -> BuiltModel:
    py = cfg.python
    assert py is not None, "source python without a python section (the config rules forbid it)"
    function = resolve_entrypoint(py.entrypoint)
    try:
        result = function(cfg, **py.kwargs)
    except SpecError:
        raise
    except Exception as err:
        raise SpecError(
            FIELD, py.entrypoint, f"the function raised {type(err).__name__}: {err}", "fix the model code or its kwargs"
        ) from err
    module, blocks, loss = check_result(result, py.entrypoint)
    vocab = getattr(module, "vocab_size", cfg.vocab_size)
    return BuiltModel(
        module=module,
        blocks=blocks,
        vocab_size=int(vocab),
        loss=loss,
        init=reset_module,
    )
