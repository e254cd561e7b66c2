"""A coordination.k8s.io Lease held by the active operator replica; standbys wait for it to expire.

Replaces kopf's peering (which needs its own CRDs): the operator runs kopf in standalone mode
only after taking the Lease, and exits if it ever fails to renew it, so two replicas never
reconcile the same job at once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from elastrain_operator.kube.client import CONFLICT, NOT_FOUND, KubeApi, KubeError
from elastrain_operator.reconcile.leadership import may_lead

log = logging.getLogger(__name__)


def _now() -> datetime:
    return datetime.now(UTC)


class LeaderLease:
    def __init__(self, api: KubeApi, *, namespace: str, name: str, identity: str, duration_seconds: int) -> None:
        self.api, self.namespace, self.name = api, namespace, name
        self.identity, self.duration = identity, duration_seconds

    def try_acquire(self) -> bool:
        """Take or renew the Lease if it is free or ours; False if another replica holds it."""
        coordination = self.api.coordination
        now = _now()
        try:
            lease = coordination.read_namespaced_lease(self.name, self.namespace)
        except ApiException as err:
            if err.status != NOT_FOUND:
                raise KubeError(f"read Lease {self.namespace}/{self.name}", err) from err
            body = client.V1Lease(
                metadata=client.V1ObjectMeta(name=self.name, namespace=self.namespace),
                spec=client.V1LeaseSpec(
                    holder_identity=self.identity,
                    lease_duration_seconds=self.duration,
                    acquire_time=now,
                    renew_time=now,
                ),
            )
            try:
                coordination.create_namespaced_lease(self.namespace, body)
            except ApiException as create_err:
                if create_err.status == CONFLICT:
                    return False
                raise KubeError(f"create Lease {self.namespace}/{self.name}", create_err) from create_err
            return True
        spec = lease.spec or client.V1LeaseSpec()
        lease.spec = spec
        if not may_lead(
            holder=spec.holder_identity,
            renewed=spec.renew_time,
            duration_seconds=spec.lease_duration_seconds or self.duration,
            identity=self.identity,
            now=now,
        ):
            return False
        if spec.holder_identity != self.identity:
            spec.acquire_time = now
            spec.holder_identity = self.identity
        spec.renew_time = now
        spec.lease_duration_seconds = self.duration
        try:
            # Replace carries the resourceVersion read above: a concurrent taker makes this fail with 409.
            coordination.replace_namespaced_lease(self.name, self.namespace, lease)
        except ApiException as err:
            if err.status == CONFLICT:
                return False
            raise KubeError(f"renew Lease {self.namespace}/{self.name}", err) from err
        return True

    def wait_until_leader(self, stop: threading.Event | None = None) -> bool:
        """Block until this replica holds the Lease (True) or ``stop`` is set (False)."""
        stop = stop or threading.Event()
        while not stop.is_set():
            if self.try_acquire():
                log.info("leader election: %s holds Lease %s/%s", self.identity, self.namespace, self.name)
                return True
            stop.wait(max(1.0, self.duration / 3))
        return False

    def keep_renewing(self, on_lost: Callable[[], None], stop: threading.Event | None = None) -> threading.Thread:
        """Renew in a background thread every third of the duration; call ``on_lost`` if renewal fails."""
        stop = stop or threading.Event()

        def loop() -> None:
            while not stop.wait(self.duration / 3):
                try:
                    held = self.try_acquire()
                except KubeError:
                    log.exception("leader election: renewing the Lease failed")
                    held = False
                if not held:
                    log.error("leader election: lost Lease %s/%s", self.namespace, self.name)
                    on_lost()
                    return

        thread = threading.Thread(target=loop, name="elastrain-lease", daemon=True)
        thread.start()
        return thread
