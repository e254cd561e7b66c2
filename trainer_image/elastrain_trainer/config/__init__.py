"""The trainer's configuration model (pydantic only: imports neither torch nor ray nor torchft).

The operator embeds :class:`TrainerConfig` in the TrainingJob API and the trainer validates the
config it receives with the same model.
"""

from elastrain_trainer.config.base import RULE_ERROR_TYPE, ConfigModel, Rule
from elastrain_trainer.config.compression import CompressionConfig, DynamicCompressionConfig
from elastrain_trainer.config.data import DataConfig, TextDataConfig
from elastrain_trainer.config.fault_tolerance import FaultToleranceConfig
from elastrain_trainer.config.model import HuggingFaceModelConfig, ModelConfig, PythonModelConfig
from elastrain_trainer.config.optim import OptimizerConfig
from elastrain_trainer.config.overlap import OverlapConfig
from elastrain_trainer.config.parallelism import ParallelismConfig
from elastrain_trainer.config.precision import LossScalingConfig, PrecisionConfig
from elastrain_trainer.config.schedule import LrScheduleConfig
from elastrain_trainer.config.trainer import TrainerConfig

__all__ = [
    "RULE_ERROR_TYPE",
    "CompressionConfig",
    "ConfigModel",
    "DataConfig",
    "DynamicCompressionConfig",
    "FaultToleranceConfig",
    "HuggingFaceModelConfig",
    "LossScalingConfig",
    "LrScheduleConfig",
    "ModelConfig",
    "OptimizerConfig",
    "OverlapConfig",
    "ParallelismConfig",
    "PrecisionConfig",
    "PythonModelConfig",
    "Rule",
    "TextDataConfig",
    "TrainerConfig",
]
