{{/* Chart name, truncated to the 63 characters of a label value. */}}
{{- define "pfo.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name of the release's objects. */}}
{{- define "pfo.fullname" -}}
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

{{/* Labels on every object. Deterministic (no dates, no random values): Argo CD sees no diff. */}}
{{- define "pfo.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "pfo.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "pfo.selectorLabels" -}}
app.kubernetes.io/name: {{ include "pfo.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "pfo.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "pfo.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Rules for PrefectFlowDeployments, in a ClusterRole (all namespaces) or a Role per watched namespace. */}}
{{- define "pfo.rules.flowDeployments" -}}
# Watch PrefectFlowDeployments; patch adds/removes the finalizer pfo.dev/finalizer.
- apiGroups: [pfo.dev]
  resources: [prefectflowdeployments]
  verbs: [list, watch, patch]
# Conditions, observedGeneration, kopf's progress (status.kopf) and the sweep's merge patches.
- apiGroups: [pfo.dev]
  resources: [prefectflowdeployments/status]
  verbs: [patch]
# kopf posts core/v1 Events about the objects it handles.
- apiGroups: [""]
  resources: [events]
  verbs: [create]
{{- end }}

{{/* Cluster-scoped rules, needed in both modes: always in the ClusterRole. */}}
{{- define "pfo.rules.cluster" -}}
# kopf discovers the CRDs of the resources it serves (and notices them appear/change).
- apiGroups: [apiextensions.k8s.io]
  resources: [customresourcedefinitions]
  verbs: [list, watch]
# PrefectWorkPools are cluster-scoped: watched cluster-wide even with watchNamespaces.
- apiGroups: [pfo.dev]
  resources: [prefectworkpools]
  verbs: [list, watch, patch]
- apiGroups: [pfo.dev]
  resources: [prefectworkpools/status]
  verbs: [patch]
# PrefectConcurrencyLimits are cluster-scoped too (Prefect global concurrency limits).
- apiGroups: [pfo.dev]
  resources: [prefectconcurrencylimits]
  verbs: [list, watch, patch]
- apiGroups: [pfo.dev]
  resources: [prefectconcurrencylimits/status]
  verbs: [patch]
{{- end }}

{{/* Name of the metrics Service; also the `job` label Prometheus gives the operator's series
     when it scrapes through the ServiceMonitor. */}}
{{- define "pfo.metricsServiceName" -}}
{{- printf "%s-metrics" (include "pfo.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The monitoring pack reads /metrics: fail early instead of rendering objects that can never see a series. */}}
{{/* Call with (list $ "the.value.that.asks"). */}}
{{- define "pfo.requireMetrics" -}}
{{- if not (index . 0).Values.metrics.enabled }}
{{- fail (printf "%s needs metrics.enabled=true (the operator's /metrics endpoint)" (index . 1)) }}
{{- end }}
{{- end }}

{{/* PromQL label matchers that select the operator's series in Prometheus. */}}
{{- define "pfo.promSelector" -}}
{{- with .Values.monitoring.prometheusRule.selector }}{{ . }}{{ else -}}
job="{{ include "pfo.metricsServiceName" . }}",namespace="{{ .Release.Namespace }}"
{{- end }}
{{- end }}

{{/* Where the workers of PrefectWorkPools run. */}}
{{- define "pfo.workersNamespace" -}}
{{- .Values.workers.namespace | default .Release.Namespace }}
{{- end }}

{{/* The ClusterRole the operator binds to a pool's workers in each namespace that uses the pool. */}}
{{- define "pfo.workerClusterRole" -}}
{{- printf "%s-worker" (include "pfo.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
