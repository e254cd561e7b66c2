{{/* Names and labels shared by every template. */}}

{{- define "elastrain.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* RELEASE-elastrain, or RELEASE when it already contains the chart name; at most 63 characters. */}}
{{- define "elastrain.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "elastrain.selectorLabels" -}}
app.kubernetes.io/name: {{ include "elastrain.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "elastrain.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "elastrain.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: elastrain
{{- end }}

{{- define "elastrain.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "elastrain.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "elastrain.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The namespaced permissions of the operator: in a ClusterRole (default) or a Role per watched namespace. */}}
{{- define "elastrain.namespacedRules" -}}
# TrainingJobs: kopf lists and watches them (event handlers only: it writes nothing to a job); the operator's
# cache lists and watches them too (never a get), deletes finished ones (TTL) and writes their status.
- apiGroups: ["elastrain.dev"]
  resources: ["trainingjobs"]
  verbs: ["list", "watch", "delete"]
- apiGroups: ["elastrain.dev"]
  resources: ["trainingjobs/status"]
  verbs: ["patch"]
# The pods of a job: watched by kopf, created and deleted by the reconciler.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "watch", "create", "delete"]
# The head Service of a job.
- apiGroups: [""]
  resources: ["services"]
  verbs: ["list", "watch", "create"]
# The per-job Secret with the job's Ray token: created once, never read back (no get/list on Secrets).
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["create"]
# The per-job NetworkPolicy that admits only the job's own pods to Ray's and torchft's ports.
- apiGroups: ["networking.k8s.io"]
  resources: ["networkpolicies"]
  verbs: ["list", "watch", "create"]
# The per-job PodDisruptionBudget (evictions take workers down to minReplicas): created once, never read back.
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["create"]
# Events on TrainingJobs (kopf posts core/v1 Events).
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- end }}

{{/* The cluster-scoped reads: nodes (the operator's cache watches them for node loss) and CRDs (kopf notices the CRD changing). */}}
{{- define "elastrain.clusterReadRules" -}}
- apiGroups: [""]
  resources: ["nodes"]
  verbs: ["list", "watch"]
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["list", "watch"]
{{- end }}
