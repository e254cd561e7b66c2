"""Entry point ``elastrain-operator``: leader election, then kopf with elastrain's handlers.

Out of cluster it uses $KUBECONFIG; in a pod, its service account. Settings come from the
environment (``elastrain_operator.settings``, documented in docs/operator.md).
"""

from __future__ import annotations

import argparse
import http.server
import importlib.metadata
import logging
import os
import socket
import sys
import threading

from elastrain_operator.settings import SettingsError, load_settings, setting_variables


def _settings_help() -> str:
    lines = ["settings (environment variables; a bad value stops the operator with exit code 2):"]
    lines += [f"  {name:<27} default {default:<20} {meaning}" for name, default, meaning in setting_variables()]
    return "\n".join(lines)


def version() -> str:
    """The installed elastrain version."""
    try:
        return importlib.metadata.version("elastrain")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree that is not installed
        return "unknown"


def _parser() -> argparse.ArgumentParser:
    return argparse.ArgumentParser(
        prog="elastrain-operator",
        description="elastrain's Kubernetes operator: takes the leader Lease, then reconciles TrainingJobs. "
        "Out of a cluster it uses $KUBECONFIG; in a pod, its service account. Settings come from the "
        "environment only (docs/operator.md#settings).",
        epilog=_settings_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


class _Healthy(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # probes every few seconds: stay quiet
        return


def _standby_health(port: int) -> http.server.ThreadingHTTPServer | None:
    """Serve /healthz on ``port`` from a thread (None when the probe port is disabled)."""
    if not port:
        return None
    server = http.server.ThreadingHTTPServer(("0.0.0.0", port), _Healthy)
    threading.Thread(target=server.serve_forever, name="elastrain-standby-health", daemon=True).start()
    return server


def main(argv: list[str] | None = None) -> None:
    parser = _parser()
    parser.add_argument("--version", action="version", version=f"elastrain-operator {version()}")
    parser.parse_args(sys.argv[1:] if argv is None else argv)  # --help and --version exit here
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = load_settings()
    except SettingsError as err:
        print(f"elastrain-operator: {err}", file=sys.stderr)
        sys.exit(2)
    # Imported only now: --help, --version and a bad setting answer without loading kopf or the client.
    import kopf

    from elastrain_operator.kube.client import KubeApi, load_kube_config
    from elastrain_operator.kube.lease import LeaderLease

    load_kube_config()
    if settings.leader_election:
        lease = LeaderLease(
            KubeApi(),
            namespace=settings.lease_namespace,
            name=settings.lease_name,
            identity=f"{socket.gethostname()}-{os.getpid()}",
            duration_seconds=settings.lease_seconds,
        )
        # A standby is alive while it waits: answer the liveness probe until kopf takes the port over.
        standby = _standby_health(settings.liveness_port)
        lease.wait_until_leader()
        if standby is not None:
            standby.shutdown()
            standby.server_close()
        # Losing the Lease means another replica may act: stop at once rather than race it.
        lease.keep_renewing(on_lost=lambda: os._exit(1))
    import elastrain_operator.handlers.jobs  # noqa: F401 - registers the handlers with kopf

    kopf.run(
        standalone=True,
        clusterwide=not settings.namespaces,
        namespaces=list(settings.namespaces),
        liveness_endpoint=f"http://0.0.0.0:{settings.liveness_port}/healthz" if settings.liveness_port else None,
    )
