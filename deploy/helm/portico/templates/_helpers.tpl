{{/*
The name of the operator's objects: the release name when it contains
"portico", else "<release>-portico"; fullnameOverride wins.
*/}}
{{- define "portico.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" -}}
{{- else if contains "portico" .Release.Name -}}
{{- .Release.Name | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-portico" .Release.Name | trunc 52 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels of every object of the chart. */}}
{{- define "portico.labels" -}}
app.kubernetes.io/name: portico
{{- end -}}

{{/* Labels of the operator's objects, and the selector of its pods. */}}
{{- define "portico.operatorLabels" -}}
app.kubernetes.io/name: portico
app.kubernetes.io/component: operator
{{- end -}}

{{/* The Secret holding the xDS certificate authority (--ca-secret). */}}
{{- define "portico.caSecret" -}}
{{- include "portico.fullname" . }}-xds-ca
{{- end -}}

{{/* The leader-election Lease (--lease). */}}
{{- define "portico.lease" -}}
{{- include "portico.fullname" . }}-leader
{{- end -}}

{{/* The xDS Service the Envoy fleets dial (--xds-host). */}}
{{- define "portico.xdsService" -}}
{{- include "portico.fullname" . }}-xds
{{- end -}}
