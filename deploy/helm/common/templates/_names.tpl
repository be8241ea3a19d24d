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

{{/*
The image of a service: each of its parts from the chart's own image when set there, else from
global.image (the gpu-telemetry chart sets one for all), else the built-in default. The version is
taken whole from the first of the two that names one (digest or tag; a digest wins over a tag),
else the chart's appVersion: a service's tag is not overridden by a global digest.
*/}}
{{- define "common.image" -}}
{{- $global := (.Values.global | default dict).image | default dict -}}
{{- $image := .Values.image | default dict -}}
{{- $repository := $image.repository | default $global.repository | default "ghcr.io/gpu-telemetry/gpu-telemetry" -}}
{{- $version := $image -}}
{{- if not (or $image.digest $image.tag) -}}{{- $version = $global -}}{{- end -}}
{{- if $version.digest -}}
{{- printf "%s@%s" $repository $version.digest -}}
{{- else -}}
{{- printf "%s:%s" $repository ($version.tag | default .Chart.AppVersion | toString) -}}
{{- end -}}
{{- end -}}

{{- define "common.imagePullPolicy" -}}
{{- (.Values.image | default dict).pullPolicy | default ((.Values.global | default dict).image | default dict).pullPolicy | default "IfNotPresent" -}}
{{- end -}}

{{/*
Secrets to pull the image with, global.imagePullSecrets then the chart's own, each a name or a
LocalObjectReference ({name: x}), every name once.
*/}}
{{- define "common.imagePullSecrets" -}}
{{- $names := list -}}
{{- range concat ((.Values.global | default dict).imagePullSecrets | default list) (.Values.imagePullSecrets | default list) -}}
{{- if kindIs "map" . -}}
{{- $names = append $names .name -}}
{{- else -}}
{{- $names = append $names . -}}
{{- end -}}
{{- end -}}
{{- with $names | compact | uniq -}}
imagePullSecrets:
{{- range . }}
  - name: {{ . | quote }}
{{- end }}
{{- end -}}
{{- end -}}
