"""The torchft Lighthouse the driver hosts: forms a quorum of replica groups every step."""

from __future__ import annotations

import os
from dataclasses import dataclass

import ray


@dataclass(frozen=True)
class LighthouseOptions:
    """Lighthouse timing. A short heartbeat timeout shrinks the pause after losing a group."""

    min_replicas: int = 1
    join_timeout_ms: int = 1000
    quorum_tick_ms: int = 20
    heartbeat_timeout_ms: int = 1000
    host: str | None = None
    """Address to bind and advertise; None: all interfaces, advertising this Ray node's address."""
    port: int = 0
    """Port to bind (0: any free port). A head pod binds the contract's lighthouse port."""


class Lighthouse:
    def __init__(self, options: LighthouseOptions) -> None:
        os.environ.setdefault("RUST_LOG", "warn")  # read when torchft's native module loads
        from torchft.coordination import LighthouseServer

        self.server = LighthouseServer(
            bind=f"{options.host or '[::]'}:{options.port}",
            min_replicas=options.min_replicas,
            join_timeout_ms=options.join_timeout_ms,
            quorum_tick_ms=options.quorum_tick_ms,
            heartbeat_timeout_ms=options.heartbeat_timeout_ms,
        )
        port = str(self.server.address()).rsplit(":", 1)[1]
        # The server advertises gethostname(), which need not resolve; use this node's address.
        host = options.host or ray.util.get_node_ip_address()  # type: ignore[no-untyped-call]
        self.address = f"http://{host}:{port}"

    def shutdown(self) -> None:
        self.server.shutdown()
