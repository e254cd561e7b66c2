"""The module that makes the operator's API calls (``kube.informer`` lists and watches through its clients).

Synchronous calls through the official client, returning raw JSON dicts; creation is idempotent
(AlreadyExists is success) and so is deletion (NotFound is success). API failures surface as
:class:`KubeError` with the operation named and the cause chained.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from prometheus_client import Counter
from pydantic import ValidationError

from elastrain_operator.api import GROUP, PLURAL, VERSION

CONFLICT, NOT_FOUND, UNPROCESSABLE = 409, 404, 422


#: Longest server message quoted in an error (it ends up in a condition and an Event).
MAX_QUOTED = 1000


def shorten(text: str, limit: int = MAX_QUOTED) -> str:
    """``text`` on one line, cut at a word boundary with an ellipsis when longer than ``limit``."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    cut = flat[: limit - 4].rsplit(" ", 1)[0]
    return f"{cut} ..."


def server_message(body: str | bytes | None) -> str:
    """What the API server said: the ``message`` of the Status it answered, not the raw JSON."""
    try:
        status = json.loads(body or "")
    except ValueError:
        status = None
    if isinstance(status, dict) and isinstance(status.get("message"), str) and status["message"]:
        return shorten(status["message"])
    raw = body.decode(errors="replace") if isinstance(body, bytes) else body or ""
    return shorten(raw) or "no message"


class KubeError(RuntimeError):
    """A Kubernetes API call failed; ``status`` is the HTTP status (0 when no response)."""

    def __init__(self, what: str, err: ApiException | ValidationError) -> None:
        if isinstance(err, ValidationError):
            # The client validates a body against its own models before sending it: what it refuses, the
            # server would refuse too (422 Invalid).
            self.status = UNPROCESSABLE
            super().__init__(f"{what} failed: the object is invalid: {shorten(str(err))}")
            return
        self.status = int(err.status or 0)
        super().__init__(f"{what} failed: HTTP {err.status} {err.reason}: {server_message(err.body)}")


def load_kube_config() -> None:
    """In a pod: the service account; elsewhere: $KUBECONFIG or ~/.kube/config."""
    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    except config.ConfigException:
        # The client reads $KUBECONFIG when it is imported; read it now, in case it was set later.
        config.load_kube_config(config_file=os.environ.get("KUBECONFIG"))  # type: ignore[no-untyped-call]


def _json(response: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(response.data)
    return data


API_REQUESTS = Counter("elastrain_api_requests_total", "Kubernetes API requests the operator made", ["verb"])


class CountingApiClient(client.ApiClient):
    """The official ApiClient, counting every HTTP request it makes (elastrain_api_requests_total)."""

    def call_api(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        API_REQUESTS.labels(verb=method.lower()).inc()
        return super().call_api(method, url, *args, **kwargs)


class KubeApi:
    """The calls the operator makes, on top of one ApiClient."""

    def __init__(self, api_client: client.ApiClient | None = None) -> None:
        self._client = api_client or CountingApiClient()
        self.core = client.CoreV1Api(self._client)
        self.custom = client.CustomObjectsApi(self._client)
        self.coordination = client.CoordinationV1Api(self._client)
        self.networking = client.NetworkingV1Api(self._client)
        self.policy = client.PolicyV1Api(self._client)

    # -- TrainingJobs -----------------------------------------------------------------------------

    def patch_job_status(self, namespace: str, name: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        """JSON merge patch of the status subresource (null deletes a field); returns the job as written."""
        try:
            return _json(
                self.custom.patch_namespaced_custom_object_status(
                    GROUP, VERSION, namespace, PLURAL, name, {"status": dict(patch)}, _preload_content=False
                )
            )
        except ApiException as err:
            raise KubeError(f"patch status of TrainingJob {namespace}/{name}", err) from err

    def delete_job(self, namespace: str, name: str) -> None:
        try:
            self.custom.delete_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name, propagation_policy="Background"
            )
        except ApiException as err:
            if err.status != NOT_FOUND:
                raise KubeError(f"delete TrainingJob {namespace}/{name}", err) from err

    # -- pods, services, network policies, secrets (read through the watch-fed cache, kube.cache) ------

    def create(self, obj: Mapping[str, Any]) -> bool:
        """Create a Pod, Service, Secret, NetworkPolicy or PodDisruptionBudget; return False if it already existed."""
        kind, meta = obj["kind"], obj["metadata"]
        body: Any = dict(obj)  # the client serialises plain dicts as they are
        namespace = meta["namespace"]
        try:
            if kind == "Pod":
                self.core.create_namespaced_pod(namespace, body)
            elif kind == "Service":
                self.core.create_namespaced_service(namespace, body)
            elif kind == "Secret":
                self.core.create_namespaced_secret(namespace, body)
            elif kind == "NetworkPolicy":
                self.networking.create_namespaced_network_policy(namespace, body)
            elif kind == "PodDisruptionBudget":
                self.policy.create_namespaced_pod_disruption_budget(namespace, body)
            else:
                raise ValueError(f"KubeApi.create does not handle kind {kind}")
        except ValidationError as err:
            raise KubeError(f"create {kind} {namespace}/{meta['name']}", err) from err
        except ApiException as err:
            if err.status == CONFLICT:
                return False
            raise KubeError(f"create {kind} {namespace}/{meta['name']}", err) from err
        return True

    def delete_pod(self, namespace: str, name: str) -> bool:
        """Delete a pod; return False if it was already gone."""
        try:
            self.core.delete_namespaced_pod(name, namespace)
        except ApiException as err:
            if err.status == NOT_FOUND:
                return False
            raise KubeError(f"delete Pod {namespace}/{name}", err) from err
        return True
