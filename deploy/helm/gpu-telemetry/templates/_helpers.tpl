{{/* Resources of the umbrella chart itself are named after the release. */}}
{{- define "gpu-telemetry.fullname" -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
