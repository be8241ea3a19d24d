{{/* Resources of the umbrella chart itself are named after the release. */}}
{{- define "gpu-telemetry.fullname" -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* A duration as the services read one (30s, 1.5h, 7d, 0), in milliseconds; the default when unset. */}}
{{- define "gpu-telemetry.durationMs" -}}
{{- $value := toString (.value | default "") -}}
{{- if eq $value "" -}}{{- $value = .default -}}{{- end -}}
{{- $units := dict "ms" 1 "s" 1000 "m" 60000 "h" 3600000 "d" 86400000 -}}
{{- $number := regexFind "^[0-9]+(\\.[0-9]+)?" $value -}}
{{- $unit := trimPrefix $number $value -}}
{{- if hasKey $units $unit -}}{{ mulf (float64 $number) (get $units $unit) }}{{- else -}}{{ float64 ($number | default 0) }}{{- end -}}
{{- end -}}
