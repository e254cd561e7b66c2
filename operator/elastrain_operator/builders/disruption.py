"""The job's PodDisruptionBudget: evictions (``kubectl drain``, cluster upgrades) take worker pods only
down to ``elastic.minReplicas``.

Voluntary disruptions go through the Eviction API, which refuses to evict a worker while that would
leave fewer than the minimum available: ``kubectl drain`` then waits (and retries) instead of pushing
the job below the size it trains with. Without ``spec.elastic`` the minimum is ``replicas``, so no
worker is evicted while the job runs. The head is not covered (its eviction restarts the job from the
last checkpoint, which a drain must still be able to do). Created with the job's head Service; a later
change of ``minReplicas`` does not update it.
"""

from __future__ import annotations

from typing import Any

from elastrain_operator.api import Label, Role
from elastrain_operator.builders.names import job_labels
from elastrain_operator.builders.owner import owner_reference


def disruption_budget_name(job: str) -> str:
    return f"{job}-workers"


def build_disruption_budget(*, job: str, namespace: str, uid: str, min_available: int) -> dict[str, Any]:
    """A ``policy/v1`` PodDisruptionBudget over the job's worker pods, owned by the job."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {
            "name": disruption_budget_name(job),
            "namespace": namespace,
            "labels": job_labels(job),
            "ownerReferences": [owner_reference(name=job, uid=uid)],
        },
        "spec": {
            "minAvailable": min_available,
            "selector": {"matchLabels": {Label.JOB: job, Label.ROLE: Role.WORKER.value}},
        },
    }
