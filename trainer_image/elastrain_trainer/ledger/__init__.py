"""The shard ledger: which samples each replica group trains on, step by step, and an exact audit."""

from elastrain_trainer.ledger.ledger import Audit, Piece, ShardLedger, shard_bounds

__all__ = ["Audit", "Piece", "ShardLedger", "shard_bounds"]
