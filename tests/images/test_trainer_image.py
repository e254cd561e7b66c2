"""The trainer image runs what the operator's pods run: `elastrain train` on a tiny config, and
`elastrain pod head|worker` refusing a broken environment contract with its termination message.

Like a pod under the `restricted` Pod Security Standard: the image's own user (uid 1000), a read-only
root file system, all capabilities dropped, no privilege escalation; one writable volume at /tmp.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.images.containers import Images, podman, run_in

from elastrain_operator.builders.security import TRAINER_UID

RESTRICTED = ("--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges")

STEPS = 4
TINY: dict[str, Any] = {
    "model": {"vocabSize": 64, "numLayers": 1, "numHeads": 2, "dim": 16, "seqLen": 16},
    "data": {"source": "synthetic", "numShards": 4},
    "lrSchedule": {"warmupSteps": 1},
    "steps": STEPS,
    "globalBatchSize": 4,
    "seed": 3,
}


def test_the_image_runs_as_the_pods_user(images: Images) -> None:
    config = json.loads(podman("image", "inspect", images.trainer).stdout)[0]["Config"]
    assert config["User"] == f"{TRAINER_UID}:{TRAINER_UID}"
    assert run_in(images.trainer, ["id", "-u"]).stdout.strip() == str(TRAINER_UID)


def test_elastrain_train_runs_a_tiny_job_on_a_read_only_root(images: Images, writable_dir: Path) -> None:
    (writable_dir / "tiny.yaml").write_text(yaml.safe_dump(TINY), encoding="utf-8")
    proc = podman(
        "run", "--rm", *RESTRICTED, "--shm-size=256m", "-v", f"{writable_dir}:/tmp:rw",
        "--entrypoint", "elastrain", images.trainer,
        "train", "/tmp/tiny.yaml", "--pods", "1", "--ranks-per-pod", "1",
        "--metrics-out", "/tmp/metrics.json", "--curve-out", "/tmp/loss.png",
        check=False, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    metrics = json.loads((writable_dir / "metrics.json").read_text(encoding="utf-8"))
    committed = [m for m in metrics["metrics"] if m["committed"]]
    assert [m["step"] for m in committed] == list(range(1, STEPS + 1)), metrics["metrics"]
    assert all(math.isfinite(m["loss"]) for m in committed)
    # Written by the image's user, not root: the volume's files belong to uid 1000.
    assert (writable_dir / "metrics.json").stat().st_uid == TRAINER_UID


@pytest.mark.parametrize("role", ["head", "worker"])
def test_a_pod_with_a_broken_contract_says_why_in_its_termination_message(
    images: Images, writable_dir: Path, role: str
) -> None:
    # The kubelet mounts /dev/termination-log into every container; here a file the image's user can write.
    log = writable_dir / "termination-log"
    log.write_text("")
    os.chown(log, TRAINER_UID, TRAINER_UID)
    proc = podman(
        "run", "--rm", *RESTRICTED, "--network", "none", "-v", f"{log}:/dev/termination-log:rw",
        "-e", f"ELASTRAIN_ROLE={role}", images.trainer, "pod", role,
        check=False,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    message = log.read_text(encoding="utf-8")
    assert message.startswith(f"elastrain pod {role}:"), message
    assert "ELASTRAIN_JOB_NAME: Field required" in message and "ELASTRAIN_TRAINER_CONFIG" in message, message
