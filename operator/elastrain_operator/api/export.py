"""Where the trained model is written as a Hugging Face model directory."""

from __future__ import annotations

from pydantic import Field

from elastrain_operator.api.checkpoint import PvcLocation, location_rules
from elastrain_trainer.config import ConfigModel


class ExportSpec(ConfigModel):
    """Export of the trained weights as a Hugging Face model directory (config.json, *.safetensors, tokenizer).

    The head writes ``<location>/final`` when the last step has committed; the directory loads with
    ``transformers.AutoModelForCausalLM.from_pretrained`` as it is. Same storage rules as
    checkpoints: set exactly one of uri and pvc. status.export says where it went.
    """

    uri: str | None = Field(None, min_length=4, max_length=4096, pattern=r"^[a-z][a-z0-9+.-]*://\S+$")
    """Storage URI of the export directory: file:///shared/path, a filesystem the head pod mounts at that path."""
    pvc: PvcLocation | None = None
    """A PersistentVolumeClaim directory instead of a URI."""

    rules = location_rules(
        "export",
        "this version exports to a shared filesystem only; use uri file:///path (mounted on the head pod) or pvc",
    )
