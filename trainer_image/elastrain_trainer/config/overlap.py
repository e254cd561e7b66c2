"""Overlap of communication with computation."""

from __future__ import annotations

from pydantic import Field

from elastrain_trainer.config.base import ConfigModel


class OverlapConfig(ConfigModel):
    """Communication overlap: prefetch parameters, bucket gradients and reduce them while backward runs."""

    prefetch: bool = True
    """Gather the next block's parameters while the current one computes (FSDP forward and backward prefetch)."""
    prefetch_layers: int = Field(1, ge=1, le=8)
    """How many blocks ahead to prefetch."""
    bucket_size_mb: float = Field(25.0, gt=0.0, le=1024.0, alias="bucketSizeMB")
    """Size of gradient buckets for the cross-pod reduction, in MiB."""
    async_reduce: bool = True
    """Start each bucket's cross-pod reduction as soon as its gradients are ready, while backward continues."""
