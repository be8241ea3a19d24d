{{/*
OTLP endpoint for spans: this chart's tracing.endpoint, else global.tracing.endpoint, else the
release's gateway (its OTLP receiver) when global.tracing.enabled.
*/}}
{{- define "common.otlpEndpoint" -}}
{{- $global := (.Values.global | default dict).tracing | default dict -}}
{{- $local := .Values.tracing | default dict -}}
{{- if $local.endpoint -}}{{ $local.endpoint }}
{{- else if $global.endpoint -}}{{ $global.endpoint }}
{{- else if $global.enabled -}}{{ include "common.siblingUrl" (dict "ctx" . "chart" "gateway" "port" 8080) }}
{{- end -}}
{{- end -}}

{{/* The Secret holding the gateway's span-export key: global.tracing.keySecret, else <release>-gateway-otlp-key. */}}
{{- define "common.otlpKeySecret" -}}
{{- (((.Values.global | default dict).tracing | default dict).keySecret) | default (printf "%s-gateway-otlp-key" .Release.Name) -}}
{{- end -}}

{{- define "common.env" -}}
- name: PORT
  value: {{ .Values.containerPort | quote }}
- name: HOST
  value: "0.0.0.0"
- name: LOG_LEVEL
  value: {{ .Values.logLevel | quote }}
{{ include "common.databaseEnv" . }}
{{ include "common.serviceTokenEnv" . }}
{{- with include "common.otlpEndpoint" . }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ . | quote }}
{{- if eq . (include "common.siblingUrl" (dict "ctx" $ "chart" "gateway" "port" 8080)) }}
{{- /* The release's gateway takes spans only with its span-export key (scope traces). */}}
- name: OTLP_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "common.otlpKeySecret" $ }}
      key: GATEWAY_OTLP_KEY
      optional: true
- name: OTEL_EXPORTER_OTLP_HEADERS
  value: "authorization=Bearer%20$(OTLP_KEY)"
{{- end }}
{{- else }}
- name: OTEL_TRACES_EXPORTER
  value: none
{{- end }}
{{- with (.Values.global | default dict).tracing }}
{{- if and .enabled (ne (toString .samplerRatio | default "1") "1") }}
- name: OTEL_TRACES_SAMPLER
  value: parentbased_traceidratio
- name: OTEL_TRACES_SAMPLER_ARG
  value: {{ .samplerRatio | quote }}
{{- end }}
{{- end }}
{{- range $name, $value := .Values.config }}
- name: {{ $name }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- end -}}

{{/*
Fails the render when a duration in .Values.config lies outside the range its service takes, which
JSON Schema cannot compare: the chart's duration-ranges.json holds each range (written by
deploy/tools/schemas.cjs, as values.schema.json is). helm then refuses the value, naming it,
instead of installing a pod that exits on "Invalid configuration".
*/}}
{{- define "common.checkDurations" -}}
{{- $ranges := .Files.Get "duration-ranges.json" | default "{}" | fromJson -}}
{{- $units := dict "ms" 1 "s" 1000 "m" 60000 "h" 3600000 "d" 86400000 -}}
{{- range $name, $value := .Values.config -}}
{{- $range := get $ranges $name -}}
{{- if and (kindIs "map" $range) (kindIs "string" $value) (regexMatch "^[0-9]+(\\.[0-9]+)?(ms|s|m|h|d)$" $value) -}}
{{- $number := regexFind "^[0-9]+(\\.[0-9]+)?" $value -}}
{{- $ms := mulf (float64 $number) (get $units (trimPrefix $number $value)) -}}
{{- if and (hasKey $range "minMs") (lt $ms (float64 (get $range "minMs"))) -}}
{{- fail (printf "config.%s: %s is below %s, the least the service takes" $name $value (get $range "min")) -}}
{{- end -}}
{{- if and (hasKey $range "maxMs") (gt $ms (float64 (get $range "maxMs"))) -}}
{{- fail (printf "config.%s: %s is above %s, the most the service takes" $name $value (get $range "max")) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
The Deployment (or StatefulSet) of a service: (dict "ctx" . "kind" "Deployment" "env" <extra env YAML list>).
*/}}
{{- define "common.workload" -}}
{{- $ctx := .ctx -}}
{{- include "common.checkDurations" $ctx -}}
{{- $values := $ctx.Values -}}
{{- $kind := .kind | default "Deployment" -}}
apiVersion: apps/v1
kind: {{ $kind }}
metadata:
  name: {{ include "common.fullname" $ctx }}
  labels:
    {{- include "common.labels" $ctx | nindent 4 }}
spec:
  {{- if not ($values.autoscaling | default dict).enabled }}
  replicas: {{ $values.replicaCount }}
  {{- end }}
  revisionHistoryLimit: 5
  {{- if eq $kind "StatefulSet" }}
  serviceName: {{ include "common.fullname" $ctx }}-headless
  podManagementPolicy: Parallel
  {{- else }}
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxUnavailable: 0
      maxSurge: 25%
  {{- end }}
  selector:
    matchLabels:
      {{- include "common.selectorLabels" $ctx | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "common.selectorLabels" $ctx | nindent 8 }}
        app.kubernetes.io/part-of: gpu-telemetry
        {{- with $values.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      annotations:
        {{- /* Roll the pods when the configuration changes. */}}
        checksum/config: {{ toJson $values.config | sha256sum | trunc 16 }}
        {{- with $values.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ include "common.serviceAccountName" $ctx }}
      automountServiceAccountToken: false
      {{- with include "common.imagePullSecrets" $ctx }}
      {{- . | nindent 6 }}
      {{- end }}
      securityContext:
        {{- toYaml $values.podSecurityContext | nindent 8 }}
      terminationGracePeriodSeconds: {{ $values.terminationGracePeriodSeconds }}
      {{- with $values.priorityClassName }}
      priorityClassName: {{ . }}
      {{- end }}
      containers:
        - name: {{ include "common.name" $ctx }}
          image: {{ include "common.image" $ctx | quote }}
          imagePullPolicy: {{ include "common.imagePullPolicy" $ctx }}
          args: [{{ $ctx.Chart.Name | quote }}]
          ports:
            - name: http
              containerPort: {{ $values.containerPort }}
              protocol: TCP
          env:
            {{- include "common.env" $ctx | nindent 12 }}
            {{- with .env }}
            {{- . | nindent 12 }}
            {{- end }}
            {{- with $values.extraEnv }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          {{- with $values.extraEnvFrom }}
          envFrom:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          startupProbe:
            httpGet: { path: /healthz, port: http }
            periodSeconds: 2
            failureThreshold: 30
          livenessProbe:
            httpGet: { path: /healthz, port: http }
            {{- toYaml $values.livenessProbe | nindent 12 }}
          readinessProbe:
            httpGet: { path: /readyz, port: http }
            {{- toYaml $values.readinessProbe | nindent 12 }}
          {{- if gt (int $values.preStopSleepSeconds) 0 }}
          # Serving on while Services and Ingress controllers stop sending here: SIGTERM comes after.
          lifecycle:
            preStop:
              exec:
                command: ["sleep", {{ $values.preStopSleepSeconds | quote }}]
          {{- end }}
          resources:
            {{- toYaml $values.resources | nindent 12 }}
          securityContext:
            {{- toYaml $values.securityContext | nindent 12 }}
          volumeMounts:
            - name: tmp
              mountPath: /tmp
      volumes:
        - name: tmp
          emptyDir:
            sizeLimit: 64Mi
      {{- with $values.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $values.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $values.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $values.topologySpreadConstraints }}
      topologySpreadConstraints:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- end -}}
