"""What the Dockerfiles must say, checked without building them: pinned default bases with no registry host,
non-root users that match what the chart and the operator's pods expect, entry points that exist, sources
that are sent, and image names the chart agrees with. The images themselves are built and run in tests/images."""

from __future__ import annotations

import fnmatch
import json
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from elastrain_operator.builders.pods import HEAD_COMMAND, WORKER_COMMAND
from elastrain_operator.builders.security import TRAINER_UID

REPO_ROOT = Path(__file__).resolve().parents[2]
OPERATOR = REPO_ROOT / "Dockerfile"
TRAINER = REPO_ROOT / "trainer_image" / "Dockerfile"
PINNED_TAG = re.compile(r"^[\w./-]+:\d+\.\d+\.\d+[\w.-]*$|^[\w./-]+(:[\w.-]+)?@sha256:[a-f0-9]{64}$")


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str


def parse(path: Path) -> list[Instruction]:
    """Instructions of a Dockerfile, continuation lines joined, comments dropped."""
    instructions: list[Instruction] = []
    pending = ""
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, arguments = (pending + stripped).partition(" ")
        instructions.append(Instruction(keyword.upper(), arguments.strip()))
        pending = ""
    assert not pending, f"{path}: a continuation line ends the file"
    return instructions


def stage_names(instructions: list[Instruction]) -> list[str]:
    """The names (`FROM ... AS name`) of the stages, in order."""
    froms = [ins.arguments.split() for ins in instructions if ins.keyword == "FROM"]
    return [words[2] for words in froms if len(words) == 3 and words[1].upper() == "AS"]


def base_images(instructions: list[Instruction]) -> list[str]:
    """The base image of each stage that starts from an image (not from an earlier stage), `${ARG}` replaced."""
    args = {}
    images = []
    stages = stage_names(instructions)
    for ins in instructions:
        if ins.keyword == "ARG" and "=" in ins.arguments:
            name, _, default = ins.arguments.partition("=")
            args[name] = default
        if ins.keyword == "FROM" and ins.arguments.split()[0] not in stages:
            image = ins.arguments.split()[0]
            images.append(re.sub(r"\$\{(\w+)\}", lambda m: args[m[1]], image))
    return images


def stages(instructions: list[Instruction]) -> dict[str, list[Instruction]]:
    """Each stage's instructions (its FROM first), by name; the unnamed final stage is "final"."""
    found: dict[str, list[Instruction]] = {}
    current: list[Instruction] | None = None
    for ins in instructions:
        if ins.keyword == "FROM":
            words = ins.arguments.split()
            named = len(words) == 3 and words[1].upper() == "AS"
            current = found.setdefault(words[2] if named else "final", [])
        if current is not None:
            current.append(ins)
    return found


def final_stage(instructions: list[Instruction]) -> list[Instruction]:
    last_from = max(i for i, ins in enumerate(instructions) if ins.keyword == "FROM")
    return instructions[last_from:]


@pytest.mark.parametrize("dockerfile", [OPERATOR, TRAINER], ids=["operator", "trainer"])
def test_base_images_are_pinned(dockerfile: Path) -> None:
    images = base_images(parse(dockerfile))
    assert images
    for image in images:
        assert "latest" not in image, f"{dockerfile}: {image} floats"
        assert PINNED_TAG.match(image), f"{dockerfile}: {image} is not pinned to an x.y.z tag or a digest"


@pytest.mark.parametrize(("dockerfile", "uid"), [(OPERATOR, None), (TRAINER, TRAINER_UID)], ids=["operator", "trainer"])
def test_the_image_runs_as_the_expected_non_root_user(dockerfile: Path, uid: int | None) -> None:
    users = [ins.arguments for ins in final_stage(parse(dockerfile)) if ins.keyword == "USER"]
    assert users, f"{dockerfile}: the final stage never sets USER (it would run as root)"
    user, _, group = users[-1].partition(":")
    assert user.isdigit() and int(user) != 0, "USER must be a numeric non-root uid (runAsNonRoot checks numbers)"
    assert group.isdigit() and int(group) != 0
    if uid is None:  # the operator: the uid the chart runs it as
        values = yaml.safe_load((REPO_ROOT / "helm/elastrain/values.yaml").read_text(encoding="utf-8"))
        uid = values["podSecurityContext"]["runAsUser"]
    assert int(user) == uid


def test_entry_points_exist() -> None:
    scripts = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
    (operator_entry,) = [i.arguments for i in final_stage(parse(OPERATOR)) if i.keyword == "ENTRYPOINT"]
    (trainer_entry,) = [i.arguments for i in final_stage(parse(TRAINER)) if i.keyword == "ENTRYPOINT"]
    assert json.loads(operator_entry) == ["elastrain-operator"]
    assert json.loads(trainer_entry) == ["elastrain"]
    assert scripts["elastrain-operator"] == "elastrain_operator.main:main"
    # The pods the operator builds run the trainer's CLI; the image must provide it.
    assert HEAD_COMMAND[0] == WORKER_COMMAND[0] == "elastrain" in scripts


@pytest.mark.parametrize(
    ("dockerfile", "extra", "forbidden"),
    [(OPERATOR, "operator", "trainer"), (TRAINER, "trainer", "operator")],
    ids=["operator", "trainer"],
)
def test_the_image_installs_its_extra_only(dockerfile: Path, extra: str, forbidden: str) -> None:
    runs = " ".join(ins.arguments for ins in parse(dockerfile) if ins.keyword == "RUN")
    assert f"requirements.py pyproject.toml {extra} " in runs
    assert forbidden not in runs and "dev " not in runs


@pytest.mark.parametrize("dockerfile", [OPERATOR, TRAINER], ids=["operator", "trainer"])
def test_a_source_change_reuses_the_dependency_layers(dockerfile: Path) -> None:
    """The dependencies install in a stage that sees pyproject.toml only; the project stage adds elastrain with
    --no-deps; the final stage copies the dependency venv before elastrain's own files, so a changed .py file
    rebuilds the small layers only."""
    by_stage = stages(parse(dockerfile))
    assert list(by_stage) == ["deps", "project", "final"], list(by_stage)
    deps = by_stage["deps"]
    copied = [ins.arguments.split()[:-1] for ins in deps if ins.keyword == "COPY"]
    assert copied == [["pyproject.toml"], ["hack/images/requirements.py"]], copied
    (install,) = [ins.arguments for ins in deps if ins.keyword == "RUN" and "-r /tmp/requirements.txt" in ins.arguments]
    assert "--python /opt/elastrain/bin/python install" in install
    assert "venv --without-pip /opt/elastrain" in install  # the final image carries no installer
    assert by_stage["project"][0].arguments == "deps AS project"
    project_runs = " ".join(ins.arguments for ins in by_stage["project"] if ins.keyword == "RUN")
    assert "install-project.sh /opt/elastrain /opt/build-tools /opt/elastrain-project" in project_runs
    script = (REPO_ROOT / "hack/images/install-project.sh").read_text(encoding="utf-8")
    assert "install --no-deps ." in script and " check\n" in script
    final_copies = [ins.arguments for ins in by_stage["final"] if ins.keyword == "COPY"]
    assert final_copies == [
        "--from=deps /opt/elastrain /opt/elastrain",
        "--from=project /opt/elastrain-project/ /opt/elastrain/",
    ]


@pytest.mark.parametrize("dockerfile", [OPERATOR, TRAINER], ids=["operator", "trainer"])
def test_the_base_is_a_build_argument_without_a_registry_host(dockerfile: Path) -> None:
    instructions = parse(dockerfile)
    earlier = stage_names(instructions)
    froms = [ins.arguments.split()[0] for ins in instructions if ins.keyword == "FROM"]
    assert froms and all(image == "${BASE}" or image in earlier for image in froms), froms
    for image in base_images(instructions):
        first = image.split("/")[0]
        # A first component with a dot or a port is a registry host; images stay registry-neutral.
        assert "/" not in image or ("." not in first and ":" not in first), f"{dockerfile}: {image} names a registry"


@pytest.mark.parametrize("dockerfile", [OPERATOR, TRAINER], ids=["operator", "trainer"])
def test_no_url_defaults_in_the_dockerfile(dockerfile: Path) -> None:
    args = [ins.arguments for ins in parse(dockerfile) if ins.keyword == "ARG"]
    assert not [a for a in args if "://" in a], f"{dockerfile}: an ARG defaults to a URL: {args}"


def test_the_chart_deploys_the_operator_image_make_images_tags() -> None:
    script = (REPO_ROOT / "hack/images/build-images.sh").read_text(encoding="utf-8")
    assert 'local image="elastrain/$name:$VERSION"' in script
    values = yaml.safe_load((REPO_ROOT / "helm/elastrain/values.yaml").read_text(encoding="utf-8"))
    chart = yaml.safe_load((REPO_ROOT / "helm/elastrain/Chart.yaml").read_text(encoding="utf-8"))
    version = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    assert values["image"]["repository"] == "elastrain/operator"
    assert values["image"]["tag"] == "" and chart["appVersion"] == version


def dockerignore() -> list[str]:
    lines = (REPO_ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


@pytest.mark.parametrize("dockerfile", [OPERATOR, TRAINER], ids=["operator", "trainer"])
def test_copied_sources_exist_and_are_not_ignored(dockerfile: Path) -> None:
    ignored = dockerignore()
    for ins in parse(dockerfile):
        if ins.keyword != "COPY" or ins.arguments.startswith("--from"):
            continue
        *sources, _dest = ins.arguments.split()
        for source in sources:
            assert (REPO_ROOT / source).exists(), f"{dockerfile}: COPY {source} does not exist"
            hits = [p for p in ignored if fnmatch.fnmatch(source.rstrip("/"), p) or source.startswith(p + "/")]
            assert not hits, f"{dockerfile}: COPY {source} is excluded by .dockerignore {hits}"


def test_dockerignore_keeps_the_build_context_small() -> None:
    ignored = dockerignore()
    for heavy in (".git", "tests", "benchmarks", "hack/tools"):
        assert heavy in ignored
