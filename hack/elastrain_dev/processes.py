"""Background processes of the local cluster: start detached with a log file, find, stop."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import time
from pathlib import Path

#: Where :func:`free_port` looks: above Ray's default worker ports (10002-19999), below Linux's
#: default ephemeral range (32768-60999).
STATIC_PORTS = range(20000, 32768)
_random = random.SystemRandom()  # not the global generator: tests seed that one


def ephemeral_ports() -> range:
    """The kernel's ephemeral port range: what ``bind(port 0)`` and outgoing connections take."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
    except (OSError, ValueError):
        return range(32768, 61000)
    return range(int(low), int(high) + 1)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now, outside the ephemeral range.

    The caller hands the port to another process, which binds it later. A port from the ephemeral
    range could meanwhile be taken as the local port of any connection the machine opens (the
    API server to etcd, gloo between ranks), and the later bind fails with EADDRINUSE; ports
    outside it are only ever taken by an explicit bind.
    """
    ephemeral = ephemeral_ports()
    candidates = [port for port in STATIC_PORTS if port not in ephemeral]
    for port in _random.sample(candidates, k=min(256, len(candidates))):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:  # every candidate busy: let the kernel pick
        sock.bind(("127.0.0.1", 0))
        found: int = sock.getsockname()[1]
        return found


def start(args: list[str], *, log: Path, env: dict[str, str] | None = None) -> int:
    """Start ``args`` in its own session (it outlives the caller) and return its pid."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
    return proc.pid


def is_alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (not a zombie)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def stop(pid: int, *, timeout: float = 10.0) -> None:
    """SIGTERM the process group of ``pid``, then SIGKILL it if it has not gone within ``timeout``."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            _reap(pid)
            if not is_alive(pid):
                return
            time.sleep(0.1)


def _reap(pid: int) -> None:
    # A child of this process stays a zombie until waited for.
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def tail(log: Path, lines: int = 30) -> str:
    """The last ``lines`` lines of a log file, for error messages."""
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {log})"
