"""Mixed precision: FSDP2 policies, autocast for whole-model replicas, fp16 loss scaling, clipping of shards."""

from elastrain_trainer.precision.autocast import apply_autocast, autocast_dtype
from elastrain_trainer.precision.clipping import clip_grad_norm
from elastrain_trainer.precision.policy import TORCH_DTYPES, build_mixed_precision_policy, sharded_param_dtype
from elastrain_trainer.precision.scaler import StaticShardedGradScaler, build_grad_scaler, keep_scale, unscale_and_check

__all__ = [
    "TORCH_DTYPES",
    "StaticShardedGradScaler",
    "apply_autocast",
    "autocast_dtype",
    "build_grad_scaler",
    "build_mixed_precision_policy",
    "clip_grad_norm",
    "keep_scale",
    "sharded_param_dtype",
    "unscale_and_check",
]
