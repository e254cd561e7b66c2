#!/bin/sh
# Runs in an image's build stage, once elastrain is installed: writes the venv's pinned versions (pip freeze)
# and a CycloneDX SBOM into it. The venv has no pip of its own (the final image carries the inventory but no
# installer): TOOLS is the build stage's tool venv, with pip and cyclonedx-bom, which the final stage never copies.
#
#   sh sbom.sh /opt/elastrain /opt/build-tools  ->  /opt/elastrain/requirements.freeze.txt, /opt/elastrain/sbom.cdx.json
set -eu
VENV="$1"
TOOLS="$2"
"$TOOLS/bin/pip" --python "$VENV/bin/python" freeze --all > "$VENV/requirements.freeze.txt"
"$TOOLS/bin/cyclonedx-py" environment --output-reproducible --of JSON \
    --output-file "$VENV/sbom.cdx.json" "$VENV/bin/python"
