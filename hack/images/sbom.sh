#!/bin/sh
# Runs in an image's build stage: writes the venv's pinned versions (pip freeze) and a CycloneDX SBOM
# into it, then removes pip from it, so the final stage carries the inventory but no installer.
#
#   sh sbom.sh /opt/elastrain   ->  /opt/elastrain/requirements.freeze.txt, /opt/elastrain/sbom.cdx.json
set -eu
VENV="$1"
"$VENV/bin/pip" freeze --all > "$VENV/requirements.freeze.txt"
"$VENV/bin/pip" uninstall --yes --quiet pip
# The SBOM generator lives in a venv of its own that the final stage never copies.
python3 -m venv /tmp/sbom-tool
/tmp/sbom-tool/bin/pip install --quiet "cyclonedx-bom==7.5.0"
/tmp/sbom-tool/bin/cyclonedx-py environment --output-reproducible --of JSON \
    --output-file "$VENV/sbom.cdx.json" "$VENV/bin/python"
rm -rf /tmp/sbom-tool
