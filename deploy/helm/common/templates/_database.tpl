{{/*
Where DATABASE_URL comes from, first match wins:
  1. this chart's database.existingSecret      4. global.database.url (the umbrella makes <release>-database)
  2. this chart's database.url (<fullname>-database)  5. a Secret named gpu-telemetry-database
  3. global.database.existingSecret
*/}}
{{- define "common.databaseSecretName" -}}
{{- $global := (.Values.global | default dict).database | default dict -}}
{{- $local := .Values.database | default dict -}}
{{- if $local.existingSecret -}}{{ $local.existingSecret }}
{{- else if $local.url -}}{{ include "common.fullname" . }}-database
{{- else if $global.existingSecret -}}{{ $global.existingSecret }}
{{- else if $global.url -}}{{ .Release.Name }}-database
{{- else -}}gpu-telemetry-database
{{- end -}}
{{- end -}}

{{- define "common.databaseSecretKey" -}}
{{- $global := (.Values.global | default dict).database | default dict -}}
{{- $local := .Values.database | default dict -}}
{{- if or $local.existingSecret $local.url -}}{{ $local.secretKey | default "DATABASE_URL" }}
{{- else -}}{{ $global.secretKey | default "DATABASE_URL" }}
{{- end -}}
{{- end -}}

{{/*
A Secret holding an inline database URL: (dict "ctx" . "name" <secret name> "url" <url> "key" <key>).
It is a pre-install/pre-upgrade hook so the migration Job (also a hook) can read it.
*/}}
{{- define "common.databaseSecret" -}}
apiVersion: v1
kind: Secret
metadata:
  name: {{ .name }}
  labels:
    {{- include "common.labels" .ctx | nindent 4 }}
  annotations:
    helm.sh/hook: pre-install,pre-upgrade
    helm.sh/hook-weight: "-10"
    helm.sh/hook-delete-policy: before-hook-creation
type: Opaque
stringData:
  {{ .key }}: {{ .url | quote }}
{{- end -}}

{{- define "common.databaseEnv" -}}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "common.databaseSecretName" . }}
      key: {{ include "common.databaseSecretKey" . }}
{{- end -}}
