{{/*
Names and labels. A service chart's resources are called <release>-<chart>, always (no name
overrides, no "contains" shortcut), and every Service answers on its service's own port (8080-8083)
whatever `service.port` adds: so one chart computes another's address from the release name
alone, and the gateway finds the queue at http://<release>-queue:8081.
*/}}

{{- define "common.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
A release name of at most 39 characters: the longest name a chart makes,
<release>-collector-dcgm-exporter, must fit the 63 of a Service (and <release>-collector the 52 of
a StatefulSet, whose pods' revision label adds 11). Cut shorter, the names would no longer be the
ones siblings compute from the release name.
*/}}
{{- define "common.fullname" -}}
{{- if gt (len .Release.Name) 39 -}}
{{- fail (printf "the release name %q is %d characters long; use at most 39, so every name the charts make (%s-collector-dcgm-exporter the longest) fits Kubernetes' 63" .Release.Name (len .Release.Name) .Release.Name) -}}
{{- end -}}
{{- printf "%s-%s" .Release.Name (include "common.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The port siblings reach a service chart's Service on: its service's default port. */}}
{{- define "common.internalPort" -}}
{{- get (dict "gateway" 8080 "queue" 8081 "streamer" 8082 "collector" 8083) .Chart.Name -}}
{{- end -}}

{{/* The in-cluster URL of a sibling service chart of the same release: (dict "ctx" . "chart" "queue" "port" 8081). */}}
{{- define "common.siblingUrl" -}}
{{- printf "http://%s-%s:%v" .ctx.Release.Name .chart .port -}}
{{- end -}}

{{- define "common.selectorLabels" -}}
app.kubernetes.io/name: {{ include "common.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* On every pod of the release's services: what the NetworkPolicies let in. */}}
{{- define "common.releasePodLabels" -}}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/part-of: gpu-telemetry
{{- end -}}

{{- define "common.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "common.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: gpu-telemetry
{{- end -}}

{{- define "common.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "common.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* global.image wins over the chart's image, so the umbrella chart sets one image for all. */}}
{{- define "common.image" -}}
{{- $global := (.Values.global | default dict).image | default dict -}}
{{- $image := .Values.image | default dict -}}
{{- $repository := $global.repository | default $image.repository -}}
{{- $tag := $global.tag | default $image.tag | default .Chart.AppVersion -}}
{{- if $global.digest | default $image.digest -}}
{{- printf "%s@%s" $repository ($global.digest | default $image.digest) -}}
{{- else -}}
{{- printf "%s:%s" $repository $tag -}}
{{- end -}}
{{- end -}}

{{- define "common.imagePullPolicy" -}}
{{- ((.Values.global | default dict).image | default dict).pullPolicy | default (.Values.image | default dict).pullPolicy | default "IfNotPresent" -}}
{{- end -}}

{{- define "common.imagePullSecrets" -}}
{{- $secrets := concat ((.Values.global | default dict).imagePullSecrets | default list) (.Values.imagePullSecrets | default list) -}}
{{- if $secrets -}}
imagePullSecrets:
{{- range $secrets }}
  - name: {{ . }}
{{- end }}
{{- end -}}
{{- end -}}
