"""Communication overlap: FSDP2 prefetching and bucketed, asynchronous cross-pod gradient reductions."""

from elastrain_trainer.overlap.prefetch import apply_prefetch
from elastrain_trainer.overlap.reducer import (
    MIB,
    BucketReduce,
    CrossPodReducer,
    OverlapTimings,
    build_cross_pod_reducer,
)

__all__ = ["MIB", "BucketReduce", "CrossPodReducer", "OverlapTimings", "apply_prefetch", "build_cross_pod_reducer"]
