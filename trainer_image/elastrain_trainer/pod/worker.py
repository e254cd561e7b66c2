"""``elastrain pod worker``: a worker pod is one Ray node that joins the head; the driver puts a group on it.

The pod runs ``ray start --block`` in the foreground (it replaces this process): the node
advertises one unit of the worker resource per rank, and the driver on the head starts this pod's
replica group on it. The pod ends when Ray does: deleted by the operator when the job is done, or
failed when the head has been gone longer than Ray's reconnect timeout.
"""

from __future__ import annotations

import os

from elastrain_trainer.config.podenv import PodContract
from elastrain_trainer.pod.raynode import ray_env, temp_dir_for, worker_argv


def run_worker(contract: PodContract) -> int:
    argv = worker_argv(contract, temp_dir_for(contract.pod_name or f"{contract.job_name}-{contract.worker_index}"))
    print(f"elastrain: {' '.join(argv)}", flush=True)
    os.execvpe(argv[0], argv, ray_env())
