"""The files generated from the models, by path relative to the repository root.

``hack/gen_crds.py`` writes them (``make crds``); a unit test fails when the files on disk differ.
"""

from __future__ import annotations

import copy

from elastrain_operator.api.crd import build_crd, render_crd_yaml
from elastrain_operator.api.reference import build_api_reference

CRD_PATH = "crds/trainingjobs.elastrain.dev.yaml"
CHART_CRD_PATH = "helm/elastrain/templates/crds/trainingjobs.elastrain.dev.yaml"
API_REFERENCE_PATH = "docs/api-reference.md"

#: The chart's copy is a template (not in the chart's crds/, which Helm never upgrades) so that
#: `helm upgrade` carries schema changes; Helm keeps it on uninstall, so users' jobs survive.
CHART_CRD_OPEN = "{{- if .Values.crds.enabled }}\n"
CHART_CRD_CLOSE = "{{- end }}\n"
HELM_KEEP_ANNOTATION = {"helm.sh/resource-policy": "keep"}


def render_generated_files() -> dict[str, str]:
    """Return {relative path: content} of every generated file."""
    crd = build_crd()
    chart_crd = copy.deepcopy(crd)
    chart_crd["metadata"]["annotations"] = dict(HELM_KEEP_ANNOTATION)
    return {
        CRD_PATH: render_crd_yaml(crd),
        CHART_CRD_PATH: CHART_CRD_OPEN + render_crd_yaml(chart_crd) + CHART_CRD_CLOSE,
        API_REFERENCE_PATH: build_api_reference(crd),
    }
