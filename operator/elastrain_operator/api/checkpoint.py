"""Where and how often durable checkpoints are written."""

from __future__ import annotations

from pydantic import Field

from elastrain_trainer.config import ConfigModel, Rule


class PvcLocation(ConfigModel):
    """A directory on a PersistentVolumeClaim that every pod of the job mounts (ReadWriteMany)."""

    claim_name: str = Field(min_length=1, max_length=253, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    """Name of the PersistentVolumeClaim, in the job's namespace."""
    path: str = Field("/", min_length=1, max_length=4096, pattern=r"^/")
    """Directory inside the volume; absolute."""


def location_rules(what: str, file_only: str) -> tuple[Rule, ...]:
    """The rules of a ``uri | pvc`` location (checkpoints, the export): exactly one, and URIs on files.

    ``what`` names the section in the first message; ``file_only`` is the whole second message.
    """
    return (
        Rule(
            cel="has(self.uri) != has(self.pvc)",
            holds=lambda c: (c.uri is None) != (c.pvc is None),
            message=f"{what} needs exactly one location; set either uri or pvc",
        ),
        Rule(
            cel="!has(self.uri) || self.uri.startsWith('file:///')",
            holds=lambda c: c.uri is None or c.uri.startswith("file:///"),
            field="uri",
            message=file_only,
            shows=("uri",),
        ),
    )


class CheckpointSpec(ConfigModel):
    """Durable checkpoints (torch.distributed.checkpoint, resharded on load).

    They cover what live healing cannot: losing the head or every worker, suspend and resume, and
    a change of processes per pod. Set exactly one of uri and pvc.
    """

    uri: str | None = Field(None, min_length=4, max_length=4096, pattern=r"^[a-z][a-z0-9+.-]*://\S+$")
    """Storage URI of the checkpoint directory: file:///shared/path, a filesystem every pod mounts at the same
    path. Object stores (s3://, gs://) are not supported by this version's trainer; mount them or use pvc."""
    pvc: PvcLocation | None = None
    """A PersistentVolumeClaim directory instead of a URI."""
    interval_steps: int = Field(100, ge=1, le=1000000000)
    """Save every this many steps; at most trainer.steps."""
    keep: int = Field(3, ge=1, le=100)
    """Number of most recent checkpoints kept; older ones are deleted after a newer one is complete. When a save
    does not fit, the oldest complete checkpoint is deleted first, but only while 2 complete ones remain after it."""
    max_consecutive_failures: int = Field(0, ge=0, le=1000)
    """Saves that may fail in a row (full volume, quota, read-only, I/O errors) before the job fails with the
    cause. 0, the default: never; training goes on from the last complete checkpoint, with the condition
    CheckpointsFailing set until a save succeeds."""
    async_save: bool = Field(True, validation_alias="async", serialization_alias="async")
    """Write checkpoints in the background while training continues."""

    rules = location_rules(
        "checkpoint",
        "this version writes checkpoints to a shared filesystem only: use uri file:///path "
        "(mounted on every pod) or pvc; s3:// and gs:// are not supported yet",
    )
