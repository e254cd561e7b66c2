"""The job's NetworkPolicy: Ray, the torchft lighthouse and managers, and checkpoint transport accept
traffic only from the job's own pods; the operator may reach the progress port.

Ray and torchft authenticate nobody by default, so this policy is what keeps other tenants out
(with a network plugin that enforces NetworkPolicies; see docs/security.md).
"""

from __future__ import annotations

from typing import Any

from elastrain_operator.api import Label
from elastrain_operator.builders.names import job_labels
from elastrain_operator.builders.owner import owner_reference
from elastrain_trainer.config.podenv import PROGRESS_PORT

#: Labels of the operator's own pods that may read a job's progress. The Helm chart sets them on its
#: pods whatever the release name, nameOverride or fullnameOverride (app.kubernetes.io/name follows
#: nameOverride, so it cannot be the key).
OPERATOR_POD_LABELS = {"app.kubernetes.io/part-of": "elastrain", "app.kubernetes.io/component": "operator"}


def network_policy_name(job: str) -> str:
    return f"{job}-isolation"


def build_network_policy(*, job: str, namespace: str, uid: str) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": network_policy_name(job),
            "namespace": namespace,
            "labels": job_labels(job),
            "ownerReferences": [owner_reference(name=job, uid=uid)],
        },
        "spec": {
            "podSelector": {"matchLabels": {Label.JOB: job}},
            "policyTypes": ["Ingress"],
            "ingress": [
                # Every port, but only from this job's pods: Ray GCS/raylets/object transfer, lighthouse,
                # managers and checkpoint healing all stay inside the job.
                {"from": [{"podSelector": {"matchLabels": {Label.JOB: job}}}]},
                # The operator, from whichever namespace it runs in, reads progress.
                {
                    "from": [{"namespaceSelector": {}, "podSelector": {"matchLabels": dict(OPERATOR_POD_LABELS)}}],
                    "ports": [{"protocol": "TCP", "port": PROGRESS_PORT}],
                },
            ],
        },
    }
