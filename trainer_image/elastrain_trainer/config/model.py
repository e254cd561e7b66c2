"""Which model the trainer builds: the built-in GPT, a Hugging Face causal LM, or the user's own code.

Every source ends as the same small "built model" (a module and its repeated blocks, optionally a
loss), so parallelism, checkpoints, healing and compression never see a model class. The model
knows nothing about distribution; parallelism is applied to it by the trainer.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from elastrain_trainer.config.base import ConfigModel, Rule

ActivationCheckpointing = Literal["none", "selective", "full"]
ModelSource = Literal["builtin", "huggingface", "python"]

#: ``module.path:function``: a dotted module importable in the pod's image and a function in it.
ENTRYPOINT_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$"


class HuggingFaceModelConfig(ConfigModel):
    """A causal language model that ``transformers.AutoModelForCausalLM`` builds (Llama, Qwen, Mistral, GPT-2, ...).

    Set exactly one of config (the fields of a config.json, inline) and path (a model directory
    inside the pod, e.g. a mounted PVC). The model is built on the meta device and sharded before
    any weight is materialised, so no rank ever holds the whole model.
    """

    config: dict[str, Any] | None = None
    """The fields of a Hugging Face config.json (model_type, hidden_size, num_hidden_layers, vocab_size, ...);
    the weights start from the architecture's own initialisation with the job's seed."""
    path: str | None = Field(None, min_length=1, max_length=4096, pattern=r"^/")
    """Absolute path of a model directory inside the pod holding config.json (and, with weights, *.safetensors)."""
    weights: bool = False
    """Load the pretrained safetensors weights in path straight into each rank's shards (resharded to the
    job's world size); false: the architecture's initialisation from the seed."""

    rules = (
        Rule(
            cel="has(self.config) != has(self.path)",
            holds=lambda h: (h.config is None) != (h.path is None),
            message="huggingface needs exactly one of config (inline config.json fields) and path "
            "(a model directory in the pod); set one of them",
        ),
        Rule(
            cel="!self.weights || has(self.path)",
            holds=lambda h: not h.weights or h.path is not None,
            field="weights",
            message="weights are read from the model directory; set path to the directory holding "
            "the *.safetensors files, or set weights: false",
        ),
    )


class PythonModelConfig(ConfigModel):
    """The user's own PyTorch model code, in the user's image: ``module:function``.

    The function is called with the job's model config (and kwargs) and returns the ``nn.Module``
    built on the meta device, the list of its repeated blocks (the FSDP units) and optionally a loss
    function; docs/models.md has the contract and examples/ a worked example.
    """

    entrypoint: str = Field(min_length=3, max_length=512, pattern=ENTRYPOINT_PATTERN)
    """module.path:function, importable in the trainer pods (e.g. mymodels.llama:build)."""
    kwargs: dict[str, Any] = Field(default_factory=dict)
    """Keyword arguments passed to the function (JSON values)."""


class ModelConfig(ConfigModel):
    """The model: its source, and for the built-in GPT its architecture.

    source builtin (the default) is a GPT-style decoder (pre-norm transformer blocks, rotary
    positions, tied embeddings) sized by the fields below; the defaults are a tiny model that
    trains in seconds on a CPU (about 1B parameters: layers 24, dim 2048, heads 16, vocabSize
    50304, seqLen 2048). With source huggingface or python the architecture comes from that source
    and only seqLen, activationCheckpointing (and vocabSize, when the source does not say) are read here.
    """

    source: ModelSource = "builtin"
    """builtin: elastrain's GPT; huggingface: a transformers causal LM (set huggingface);
    python: the user's own code (set python)."""
    huggingface: HuggingFaceModelConfig | None = None
    """The Hugging Face model, when source is huggingface."""
    python: PythonModelConfig | None = None
    """The user's model function, when source is python."""

    vocab_size: int = Field(256, ge=2, le=262144)
    """Number of distinct tokens; token ids in the data must be below it."""
    num_layers: int = Field(2, ge=1, le=128)
    """Number of transformer blocks."""
    num_heads: int = Field(4, ge=1, le=128)
    """Attention heads per block; must divide dim."""
    dim: int = Field(64, ge=8, le=16384)
    """Hidden size (model width); a multiple of numHeads."""
    mlp_ratio: float = Field(4.0, ge=1.0, le=16.0)
    """Width of each block's MLP as a multiple of dim."""
    seq_len: int = Field(128, ge=8, le=131072)
    """Tokens per training sequence (the context length)."""
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    """Dropout probability on attention and MLP outputs; 0 disables dropout."""
    tie_embeddings: bool = True
    """Share the token embedding with the output projection."""
    activation_checkpointing: ActivationCheckpointing = "none"
    """Recompute activations in backward to save memory: none, selective (attention only) or full (every block)."""

    rules = (
        Rule(
            cel="(self.source == 'huggingface') == has(self.huggingface)",
            holds=lambda m: (m.source == "huggingface") == (m.huggingface is not None),
            field="huggingface",
            message="huggingface is set exactly when source is huggingface; set source: huggingface with a "
            "huggingface section, or remove the section",
            shows=("source",),
        ),
        Rule(
            cel="(self.source == 'python') == has(self.python)",
            holds=lambda m: (m.source == "python") == (m.python is not None),
            field="python",
            message="python is set exactly when source is python; set source: python with python.entrypoint "
            "(module:function), or remove the section",
            shows=("source",),
        ),
        Rule(
            cel="self.dim % self.numHeads == 0",
            holds=lambda m: m.dim % m.num_heads == 0,
            field="numHeads",
            message="dim must be a multiple of numHeads (each head gets dim/numHeads channels); "
            "change numHeads to a divisor of dim",
            shows=("dim", "numHeads"),
        ),
    )
