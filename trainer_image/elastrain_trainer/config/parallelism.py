"""How a model is spread over the processes of one worker pod (torchft replicates across pods)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from elastrain_trainer.config.base import ConfigModel, Rule

Strategy = Literal["fsdp", "ddp"]


class ParallelismConfig(ConfigModel):
    """Parallelism inside a worker pod; across pods each pod is one torchft replica group (HSDP).

    With fsdp, each pod's processes shard the model in groups of shardSize (FSDP2) and replicate
    across groups; with ddp every process holds the whole model (for small models).
    """

    strategy: Strategy = "fsdp"
    """fsdp: FSDP2 sharding within a pod; ddp: whole-model replicas (small models)."""
    shard_size: int | None = Field(None, ge=1, le=64)
    """Processes per FSDP shard group; must divide the processes per pod (acceleratorsPerWorker).
    Unset: shard over all processes of the pod. fsdp only."""
    reshard_after_forward: bool = True
    """Free gathered parameters after forward and gather them again in backward (ZeRO-3);
    false keeps them (ZeRO-2: more memory, less communication). fsdp only."""

    rules = (
        Rule(
            cel="self.strategy != 'ddp' || !has(self.shardSize)",
            holds=lambda p: p.strategy != "ddp" or p.shard_size is None,
            field="shardSize",
            message="shardSize applies to strategy fsdp only; remove shardSize or set strategy: fsdp",
        ),
    )
