"""Why a pod stopped, in the one place Kubernetes carries it to the operator: the termination log.

A failed pod's last words reach ``kubectl describe tj`` this way: the pod writes one line here,
the kubelet copies it into the container status, the operator into the job's Failed condition
and its Event. Without it the user sees only an exit code.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

from elastrain_trainer.config.podenv import TERMINATION_LOG, TERMINATION_LOG_ENV, TERMINATION_MESSAGE_MAX_BYTES

log = logging.getLogger(__name__)


def termination_log_path(env: Mapping[str, str] = os.environ) -> Path | None:
    """The override if set, else the kubelet's file if it mounted one (never created outside a pod)."""
    override = env.get(TERMINATION_LOG_ENV)
    if override:
        return Path(override)
    default = Path(TERMINATION_LOG)
    return default if default.is_file() else None


def write_termination_message(message: str, env: Mapping[str, str] = os.environ) -> bool:
    """Write ``message`` (one line, cut to what the kubelet keeps) to the termination log; False if it cannot.

    Outside a pod there is no termination log: that is not an error, the message is in the log anyway.
    """
    line = " ".join(message.split())
    data = line.encode()[:TERMINATION_MESSAGE_MAX_BYTES].decode(errors="ignore")
    path = termination_log_path(env)
    if path is None:
        return False
    try:
        path.write_text(data)
    except OSError as err:
        log.debug("no termination log at %s: %s", path, err)
        return False
    return True
