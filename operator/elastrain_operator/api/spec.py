"""The desired state of a TrainingJob: what to run, on how many workers, and the rules tying fields together."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from elastrain_operator.api.checkpoint import CheckpointSpec
from elastrain_operator.api.export import ExportSpec
from elastrain_operator.api.pod import PodOverrides, SchedulingSpec
from elastrain_operator.api.run_policy import RunPolicy
from elastrain_trainer.config import ConfigModel, FaultToleranceConfig, Rule, TrainerConfig

ImagePullPolicy = Literal["Always", "IfNotPresent", "Never"]
Device = Literal["gpu", "cpu"]


class ElasticPolicy(ConfigModel):
    """Elastic bounds: the job keeps training with any number of worker pods in [minReplicas, maxReplicas].

    When a worker pod is lost the others continue without it; a replacement heals from a live peer
    and joins when it runs.
    """

    min_replicas: int = Field(ge=1, le=1000)
    """Fewest worker pods the job trains with; below it the job waits (phase Pending) instead of failing."""
    max_replicas: int = Field(ge=1, le=1000)
    """Most worker pods the job trains with; kubectl scale and autoscalers stay within it."""
    below_min_grace_seconds: int = Field(300, ge=0, le=86400)
    """Seconds below minReplicas before the job leaves Running for Pending (waiting for capacity)."""
    leave_timeout_seconds: int = Field(30, ge=0, le=3600)
    """On a scale-down, the most seconds a leaving worker pod waits for the driver to let its group go at a
    step boundary before it is deleted anyway (0: delete at once, the others wait for the lighthouse to drop it)."""

    rules = (
        Rule(
            cel="self.minReplicas <= self.maxReplicas",
            holds=lambda e: e.min_replicas <= e.max_replicas,
            field="minReplicas",
            message="minReplicas must not exceed maxReplicas; lower minReplicas or raise maxReplicas",
            shows=("minReplicas", "maxReplicas"),
        ),
    )


def _max_pods(spec: TrainingJobSpec) -> int:
    return spec.elastic.max_replicas if spec.elastic is not None else spec.replicas


_MAX_PODS_CEL = "(has(self.elastic) ? self.elastic.maxReplicas : self.replicas)"


class TrainingJobSpec(ConfigModel):
    """Desired state of a TrainingJob: the trainer image and config, the worker pods and the policies.

    The operator runs one head pod (Ray head and driver) and replicas worker pods, each with
    acceleratorsPerWorker processes that shard the model (FSDP2); the worker pods are the replica
    groups of torchft and come and go within elastic's bounds.
    """

    image: str = Field(min_length=1, max_length=1024)
    """Trainer image of the head and worker pods."""
    image_pull_policy: ImagePullPolicy = "IfNotPresent"
    """When the kubelet pulls the image: Always, IfNotPresent or Never."""
    device: Device = "gpu"
    """gpu: each worker pod requests acceleratorsPerWorker nvidia.com/gpu and runs one process per GPU (NCCL);
    cpu: each worker pod runs acceleratorsPerWorker CPU processes (gloo), for tests and laptops."""
    replicas: int = Field(1, ge=1, le=1000)
    """Desired worker pods (replica groups); kubectl scale and the /scale subresource set it.
    Within [elastic.minReplicas, elastic.maxReplicas] when elastic is set."""
    elastic: ElasticPolicy | None = None
    """Elastic bounds; unset: exactly replicas worker pods."""
    accelerators_per_worker: int = Field(1, ge=1, le=64)
    """GPUs per worker pod (device gpu) or processes per worker pod (device cpu); one worker pod per node's worth."""
    trainer: TrainerConfig = TrainerConfig()
    """The trainer's configuration: model, data, optimizer, schedule, precision, parallelism, compression."""
    checkpoint: CheckpointSpec | None = None
    """Durable checkpoints; unset: none (a job that loses its head or every worker starts over)."""
    export: ExportSpec | None = None
    """Write the trained model as a Hugging Face model directory when training ends; unset: no export."""
    run_policy: RunPolicy = RunPolicy()
    """Retries, deadlines, clean-up and suspension."""
    fault_tolerance: FaultToleranceConfig = FaultToleranceConfig()
    """How fast a hung or dead worker is given up on: the step watchdog (hang factor and floor) and the
    heartbeat, quorum, collective and step timeouts."""
    scheduling: SchedulingSpec | None = None
    """Node selection, tolerations, affinity and priority of the worker pods."""
    pod: PodOverrides | None = None
    """Environment, volumes, resources, service account, labels and annotations added to the pods."""

    rules = (
        Rule(
            cel="!has(self.elastic) || (self.elastic.minReplicas <= self.replicas"
            " && self.replicas <= self.elastic.maxReplicas)",
            holds=lambda s: s.elastic is None or s.elastic.min_replicas <= s.replicas <= s.elastic.max_replicas,
            field="replicas",
            message="replicas must lie within [elastic.minReplicas, elastic.maxReplicas]; "
            "set replicas inside the range or widen elastic",
            shows=("replicas", "elastic.minReplicas", "elastic.maxReplicas"),
        ),
        Rule(
            cel="!has(self.checkpoint) || self.checkpoint.intervalSteps <= self.trainer.steps",
            holds=lambda s: s.checkpoint is None or s.checkpoint.interval_steps <= s.trainer.steps,
            field="checkpoint.intervalSteps",
            message="checkpoint.intervalSteps must not exceed trainer.steps, or no checkpoint is ever written; "
            "lower intervalSteps",
            shows=("checkpoint.intervalSteps", "trainer.steps"),
        ),
        Rule(
            cel="!has(self.trainer.parallelism.shardSize)"
            " || self.acceleratorsPerWorker % self.trainer.parallelism.shardSize == 0",
            holds=lambda s: (
                s.trainer.parallelism.shard_size is None
                or s.accelerators_per_worker % s.trainer.parallelism.shard_size == 0
            ),
            field="trainer.parallelism.shardSize",
            message="trainer.parallelism.shardSize must divide acceleratorsPerWorker (the processes of a pod "
            "form whole shard groups); pick a divisor or remove shardSize to shard over the whole pod",
            shows=("trainer.parallelism.shardSize", "acceleratorsPerWorker"),
        ),
        Rule(
            cel=f"self.trainer.globalBatchSize >= {_MAX_PODS_CEL}"
            " * self.acceleratorsPerWorker * self.trainer.gradAccumulationSteps",
            holds=lambda s: (
                s.trainer.global_batch_size
                >= _max_pods(s) * s.accelerators_per_worker * s.trainer.grad_accumulation_steps
            ),
            field="trainer.globalBatchSize",
            message="trainer.globalBatchSize must give every process at least one sequence per micro-batch at the "
            "largest size (elastic.maxReplicas, or replicas, x acceleratorsPerWorker x gradAccumulationSteps); "
            "raise globalBatchSize or lower gradAccumulationSteps",
            shows=(
                "trainer.globalBatchSize",
                "replicas",
                "acceleratorsPerWorker",
                "trainer.gradAccumulationSteps",
            ),
        ),
        Rule(
            cel=f"self.trainer.data.numShards >= {_MAX_PODS_CEL}",
            holds=lambda s: s.trainer.data.num_shards >= _max_pods(s),
            field="trainer.data.numShards",
            message="trainer.data.numShards must be at least the largest number of worker pods "
            "(elastic.maxReplicas, or replicas) so every replica group gets a shard; raise numShards",
            shows=("trainer.data.numShards", "replicas"),
        ),
        Rule(
            cel="self.trainer.model == oldSelf.trainer.model",
            holds=None,
            field="trainer.model",
            message="trainer.model is immutable: the job's checkpoints and live replicas hold this architecture; "
            "create a new TrainingJob for a different model",
        ),
    )
