"""elastrain's Kubernetes operator.

Layers, top to bottom (enforced by the import-linter contracts in pyproject.toml):

- ``handlers``: kopf handlers; they only orchestrate parse -> decide -> apply -> status.
- ``kube``: the one place that talks to the Kubernetes API.
- ``reconcile``: decisions and status computation, pure functions of observed state and time.
- ``builders``: pure manifest builders (no kopf, no Kubernetes client).
- ``api``: the TrainingJob pydantic models, the single source of the CRD.
"""
