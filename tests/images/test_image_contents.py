"""What a platform team checks in an image before it runs on their cluster: an SBOM, pinned versions,
no build tools or installers, no secrets or build context left behind, and names the chart agrees with."""

from __future__ import annotations

import json
import re
import tomllib

import pytest
import yaml
from tests.images.containers import REPO_ROOT, Images, podman, run_in

VERSION = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
# Packages each image must pin, and packages it must not contain (the operator never pulls torch or ray).
EXPECTED = {"operator": {"kopf", "kubernetes", "pydantic"}, "trainer": {"torch", "ray", "torchft", "pydantic"}}
ABSENT = {"operator": {"torch", "ray"}, "trainer": {"kopf"}}


def image_of(images: Images, which: str) -> str:
    return images.operator if which == "operator" else images.trainer


def freeze(image: str) -> dict[str, str]:
    text = run_in(image, ["cat", "/opt/elastrain/requirements.freeze.txt"]).stdout
    pins = dict(line.split("==", 1) for line in text.splitlines() if "==" in line)
    return {name.lower().replace("_", "-"): version for name, version in pins.items()}


@pytest.mark.parametrize("which", ["operator", "trainer"])
def test_the_sbom_lists_every_pinned_package_at_its_version(images: Images, which: str) -> None:
    image = image_of(images, which)
    pins = freeze(image)
    assert EXPECTED[which] <= pins.keys() and not ABSENT[which] & pins.keys(), sorted(pins)
    label = json.loads(podman("image", "inspect", image).stdout)[0]["Config"]["Labels"]["dev.elastrain.sbom"]
    sbom = json.loads(run_in(image, ["cat", label]).stdout)
    assert sbom["bomFormat"] == "CycloneDX"
    components = {c["name"].lower().replace("_", "-"): c["version"] for c in sbom["components"]}
    # Every installed distribution is in the SBOM at the version pip froze (pip itself was removed after the freeze).
    pins.pop("pip", None)
    assert {name: components.get(name) for name in pins} == pins


@pytest.mark.parametrize("which", ["operator", "trainer"])
def test_the_final_image_has_no_build_tools_or_installer(images: Images, which: str) -> None:
    found = run_in(
        image_of(images, which),
        ["sh", "-c", "for t in gcc cc c++ make git pip pip3 apt-get; do command -v $t; done; python3 -m pip; true"],
    )
    # apt-get belongs to the Debian base itself; what matters is no compiler, no pip, no VCS.
    leftovers = [line for line in found.stdout.splitlines() if not line.endswith("/apt-get")]
    assert leftovers == [], leftovers
    assert "No module named pip" in found.stderr


@pytest.mark.parametrize("which", ["operator", "trainer"])
def test_no_secrets_or_build_context_are_left_in_the_image(images: Images, which: str) -> None:
    image = image_of(images, which)
    config = json.loads(podman("image", "inspect", image).stdout)[0]["Config"]
    names = [entry.split("=", 1)[0] for entry in config.get("Env", [])]
    secretive = [name for name in names if re.search(r"TOKEN|PASSWORD|SECRET|KEY|CERT|CREDENTIAL", name)]
    assert secretive == [], secretive
    # The build context was copied into the build stage only. The wheel directory and the CA bundle were
    # build-time volumes: podman leaves their empty mount points in layers built with them, never content.
    left = run_in(
        image,
        [
            "sh", "-c",
            "ls -d /src /tmp/sbom-tool 2>/dev/null; ls -A /wheels /pip-cache /root/.cache 2>/dev/null | grep -v ':$';"
            " find / -xdev \\( -name '.git' -o -name '.netrc' -o -name '.pypirc' -o -name 'id_rsa*'"
            " -o -name '.git-credentials' -o -name 'kubeconfig' \\) -print 2>/dev/null; true",
        ],
    )  # fmt: skip
    assert left.stdout.split() == [], left.stdout


def test_the_images_carry_the_names_the_chart_deploys(images: Images) -> None:
    values = yaml.safe_load((REPO_ROOT / "helm/elastrain/values.yaml").read_text(encoding="utf-8"))
    chart = yaml.safe_load((REPO_ROOT / "helm/elastrain/Chart.yaml").read_text(encoding="utf-8"))
    tag = values["image"]["tag"] or chart["appVersion"]
    assert images.operator == f"{values['image']['repository']}:{tag}"
    assert images.trainer == f"elastrain/trainer:{VERSION}"
    for image in (images.operator, images.trainer):
        assert podman("image", "exists", image, check=False).returncode == 0, image
