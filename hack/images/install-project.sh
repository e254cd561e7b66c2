#!/bin/sh
# Runs in an image's project stage, on top of the dependency stage: installs elastrain itself from the
# sources in the current directory (no dependencies: they are in the venv already, and `pip check` proves
# they satisfy it), writes the freeze and the SBOM (sbom.sh), and stages the files this added under STAGE,
# at their paths relative to the venv. The final stage copies the dependency venv (a cached layer) and
# then STAGE over it, so a source change costs a few hundred kilobytes, not the venv.
#
#   sh install-project.sh /opt/elastrain /opt/build-tools /opt/elastrain-project
set -eu
VENV="$1"
TOOLS="$2"
STAGE="$3"
"$TOOLS/bin/pip" --python "$VENV/bin/python" install --no-deps .
"$TOOLS/bin/pip" --python "$VENV/bin/python" check
sh "$(dirname "$0")/sbom.sh" "$VENV" "$TOOLS"
# -I: isolated, so the build's elastrain.egg-info in the current directory is not mistaken for the install.
"$VENV/bin/python" -I - "$VENV" "$STAGE" <<'PY'
import importlib.metadata
import os
import shutil
import sys

venv, stage = sys.argv[1:]
files = [os.path.normpath(str(f.locate())) for f in importlib.metadata.distribution("elastrain").files or []]
files += [os.path.join(venv, "requirements.freeze.txt"), os.path.join(venv, "sbom.cdx.json")]
for path in files:
    relative = os.path.relpath(path, venv)
    if relative.startswith(".."):
        raise SystemExit(f"install-project.sh: {path} is outside the venv {venv}")
    target = os.path.join(stage, relative)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    shutil.copy2(path, target)
print(f"install-project.sh: staged {len(files)} files under {stage}")
PY
