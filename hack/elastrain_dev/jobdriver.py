"""Drive one TrainingJob through kubectl, as a user would: create it, read its status, pods and events.

Also plays the kubelet's part where KWOK cannot: :meth:`JobDriver.finish_pod` reports a container exit.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from elastrain_dev.cluster import LocalCluster
from elastrain_dev.wait import until


def _merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def printer_columns(table: str) -> dict[str, str]:
    """The first row of a `kubectl get` table, by column header (empty cells stay empty)."""
    lines = table.splitlines()
    header, row = lines[0], lines[1]
    starts = [i for i, ch in enumerate(header) if ch != " " and (i == 0 or header[i - 1] == " ")]
    bounds = [*starts[1:], len(row) + 1]
    return {header[s:e].strip(): row[s:e].strip() for s, e in zip(starts, bounds, strict=True)}


class JobDriver:
    """One TrainingJob called ``name`` in ``namespace``; ``base`` is the manifest that ``create`` starts from."""

    def __init__(self, cluster: LocalCluster, namespace: str, *, base: dict[str, Any], name: str = "job") -> None:
        self.cluster, self.namespace, self.name, self.base = cluster, namespace, name, base

    def manifest(self, **spec: Any) -> dict[str, Any]:
        """The base manifest with ``spec`` keys overridden (dict values merged one level deep)."""
        job = copy.deepcopy(self.base)
        job["metadata"]["name"] = self.name
        job["spec"] = _merge(job["spec"], spec)
        return job

    def create(self, **spec: Any) -> dict[str, Any]:
        job = self.manifest(**spec)
        self.kubectl("apply", "-f", "-", input=json.dumps(job))
        return job

    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> Any:
        return self.cluster.kubectl(*args, "-n", self.namespace, input=input, check=check)

    def get(self) -> dict[str, Any] | None:
        return self.cluster.get_json("tj", self.name, "-n", self.namespace)

    def status(self) -> dict[str, Any]:
        status: dict[str, Any] = (self.get() or {}).get("status") or {}
        return status

    def wait_phase(self, phase: str, timeout: float = 60) -> dict[str, Any]:
        """Wait for status.phase and return the status."""

        def reached() -> dict[str, Any] | None:
            status = self.status()
            return status if status.get("phase") == phase else None

        return until(reached, what=f"TrainingJob {self.name} phase {phase}", timeout=timeout)

    def pods(self) -> dict[str, dict[str, Any]]:
        out = self.kubectl("get", "pods", "-l", f"elastrain.dev/job={self.name}", "-o", "json").stdout
        return {p["metadata"]["name"]: p for p in json.loads(out)["items"]}

    def live_pods(self) -> set[str]:
        """Names of the job's pods that are not being deleted."""
        return {name for name, pod in self.pods().items() if "deletionTimestamp" not in pod["metadata"]}

    def live(self) -> dict[tuple[str, int], dict[str, Any]]:
        """The job's pods that are not being deleted, by (role, index): what the job is made of now."""
        found: dict[tuple[str, int], dict[str, Any]] = {}
        for pod in self.pods().values():
            if "deletionTimestamp" in pod["metadata"]:
                continue
            labels = pod["metadata"]["labels"]
            found[(labels["elastrain.dev/role"], int(labels["elastrain.dev/index"]))] = pod
        return found

    def live_name(self, role: str, index: int = 0) -> str:
        """Name of the live pod holding ``role``/``index`` (replacements have names of their own)."""
        pod = until(lambda: self.live().get((role, index)), what=f"a live {role} pod {index}")
        return str(pod["metadata"]["name"])

    def running(self, role: str, index: int = 0, *, not_uid: str | None = None) -> dict[str, Any]:
        """Wait for a live, Running pod for ``role``/``index`` (other than the pod with uid ``not_uid``)."""

        def probe() -> dict[str, Any] | None:
            pod = self.live().get((role, index))
            if pod and pod["status"].get("phase") == "Running" and pod["metadata"]["uid"] != not_uid:
                return pod
            return None

        return until(probe, what=f"a Running {role} pod {index}" + (" (a replacement)" if not_uid else ""))

    def finish_pod(self, pod: str, exit_code: int, reason: str | None = None) -> None:
        """Report the trainer container's exit through the pod's status subresource, as a kubelet would."""
        phase = "Succeeded" if exit_code == 0 else "Failed"
        terminated = {"exitCode": exit_code, "reason": reason or ("Completed" if exit_code == 0 else "Error")}
        container = {
            "name": "trainer",
            "image": "elastrain-trainer",
            "imageID": "",
            "ready": False,
            "restartCount": 0,
            "state": {"terminated": terminated},
        }
        status: dict[str, Any] = {"phase": phase, "containerStatuses": [container]}
        if reason == "Evicted":
            status["reason"] = reason
        self.kubectl("patch", "pod", pod, "--subresource=status", "--type=merge", "-p", json.dumps({"status": status}))

    def events(self) -> list[dict[str, Any]]:
        selector = f"involvedObject.kind=TrainingJob,involvedObject.name={self.name}"
        out = self.kubectl("get", "events", "--field-selector", selector, "-o", "json").stdout
        items: list[dict[str, Any]] = json.loads(out)["items"]
        return items
