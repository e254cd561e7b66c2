"""The files generated from the models, by path relative to the repository root.

``hack/gen_crds.py`` writes them (``make crds``); a unit test fails when the files on disk differ.
"""

from __future__ import annotations

from elastrain_operator.api.crd import build_crd, render_crd_yaml
from elastrain_operator.api.reference import build_api_reference

CRD_PATH = "crds/trainingjobs.elastrain.dev.yaml"
CHART_CRD_PATH = "helm/elastrain/crds/trainingjobs.elastrain.dev.yaml"
API_REFERENCE_PATH = "docs/api-reference.md"


def render_generated_files() -> dict[str, str]:
    """Return {relative path: content} of every generated file."""
    crd = build_crd()
    crd_yaml = render_crd_yaml(crd)
    return {
        CRD_PATH: crd_yaml,
        # The chart's copy is identical; Helm installs crds/ before the templates and never deletes it.
        CHART_CRD_PATH: crd_yaml,
        API_REFERENCE_PATH: build_api_reference(crd),
    }
