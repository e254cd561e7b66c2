"""FSDP2 all-gather prefetching from :class:`OverlapConfig`.

By default FSDP2 prefetches one unit ahead in backward and none explicitly in forward on the
CPU path. Here each block prefetches the next ``prefetchLayers`` blocks in forward and the
previous ones in backward, so their all-gathers run while the current block computes; with
``prefetch: false`` explicit prefetching is switched off in both directions.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch.distributed.fsdp import FSDPModule

from elastrain_trainer.config.overlap import OverlapConfig


def apply_prefetch(blocks: Sequence[FSDPModule], cfg: OverlapConfig) -> None:
    """Set forward and backward prefetch targets on ``blocks``, given in forward order."""
    depth = cfg.prefetch_layers if cfg.prefetch else 0
    for index, block in enumerate(blocks):
        block.set_modules_to_forward_prefetch(list(blocks[index + 1 : index + 1 + depth]))
        block.set_modules_to_backward_prefetch(list(reversed(blocks[max(0, index - depth) : index])))
