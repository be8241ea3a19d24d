{{/*
A Secret whose value is generated once and kept: (dict "ctx" . "name" <name> "key" <key> "value" <value or "">).
The value given wins; else the one already in the cluster (lookup, so an upgrade keeps it); else
40 random characters. Other keys an operator added to that Secret (a rotation's
SERVICE_TOKEN_PREVIOUS) are kept too. `helm uninstall` leaves it (resource-policy keep).
*/}}
{{- define "common.generatedSecret" -}}
{{- $existing := (lookup "v1" "Secret" .ctx.Release.Namespace .name).data | default dict }}
{{- $data := dict }}
{{- range $key, $encoded := $existing }}
{{- $_ := set $data $key (b64dec $encoded) }}
{{- end }}
{{- $_ := set $data .key (.value | default (get $data .key) | default (randAlphaNum 40)) }}
apiVersion: v1
kind: Secret
metadata:
  name: {{ .name }}
  labels:
    {{- include "common.labels" .ctx | nindent 4 }}
  annotations:
    helm.sh/resource-policy: keep
type: Opaque
stringData:
  {{- range $key, $value := $data }}
  {{ $key }}: {{ $value | quote }}
  {{- end }}
{{- end -}}

{{/*
The Secret holding SERVICE_TOKEN, the credential the services present to each other (and, during
a rotation, SERVICE_TOKEN_PREVIOUS): this chart's serviceToken.existingSecret, else
global.serviceToken.existingSecret, else <release>-service-token (generated).
*/}}
{{- define "common.serviceTokenSecretName" -}}
{{- $global := (.Values.global | default dict).serviceToken | default dict -}}
{{- $local := .Values.serviceToken | default dict -}}
{{- $local.existingSecret | default $global.existingSecret | default (printf "%s-service-token" .Release.Name) -}}
{{- end -}}

{{/* The generated <release>-service-token, unless an existing Secret is named. */}}
{{- define "common.serviceTokenSecret" -}}
{{- $global := (.Values.global | default dict).serviceToken | default dict -}}
{{- $local := .Values.serviceToken | default dict -}}
{{- if not (or $local.existingSecret $global.existingSecret) -}}
{{ include "common.generatedSecret" (dict "ctx" . "name" (include "common.serviceTokenSecretName" .) "key" "SERVICE_TOKEN" "value" "") }}
{{- end -}}
{{- end -}}

{{- define "common.serviceTokenEnv" -}}
{{- $secret := include "common.serviceTokenSecretName" . -}}
- name: SERVICE_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: SERVICE_TOKEN
- name: SERVICE_TOKEN_PREVIOUS
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: SERVICE_TOKEN_PREVIOUS
      optional: true
{{- end -}}
