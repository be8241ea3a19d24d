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
  {{- /* A values file's whole numbers arrive as floats: 33554432 would print as 3.3554432e+07. */}}
  {{- if and (kindIs "float64" $value) (eq (float64 (int64 $value)) $value) }}
  value: {{ int64 $value | toString | quote }}
  {{- else }}
  value: {{ $value | toString | quote }}
  {{- end }}
{{- end }}
{{- end -}}

{{/*
Fails the render when a duration in .Values.config breaks a rule of its service that JSON Schema
cannot compare: its range, a whole number of a step (TELEMETRY_CHUNK: minutes), dividing a duration
or another variable (TELEMETRY_SLICE divides TELEMETRY_CHUNK), at most another variable
(COLLECT_TIMEOUT <= COLLECT_INTERVAL). The chart's duration-rules.json holds the rules, written by
deploy/tools/schemas.cjs as values.schema.json is. helm then refuses the value, naming it,
instead of installing a pod that exits on "Invalid configuration". A variable left unset counts at
its service's default (defaultMs), or 0, which the rules leave alone.
*/}}
{{- define "common.checkDurations" -}}
{{- $rules := .Files.Get "duration-rules.json" | default "{}" | fromJson -}}
{{- $config := .Values.config | default dict -}}
{{- $units := dict "ms" 1 "s" 1000 "m" 60000 "h" 3600000 "d" 86400000 -}}
{{- $ms := dict -}}
{{- $text := dict -}}
{{- range $name, $rule := $rules -}}
{{- $value := get $config $name -}}
{{- if and (kindIs "string" $value) (regexMatch "^[0-9]+(\\.[0-9]+)?(ms|s|m|h|d)$" $value) -}}
{{- $number := regexFind "^[0-9]+(\\.[0-9]+)?" $value -}}
{{- $_ := set $ms $name (mulf (float64 $number) (get $units (trimPrefix $number $value))) -}}
{{- $_ := set $text $name $value -}}
{{- if and (hasKey $rule "minMs") (lt (get $ms $name) (float64 (get $rule "minMs"))) -}}
{{- fail (printf "config.%s: %s is below %s, the least the service takes" $name $value (get $rule "min")) -}}
{{- end -}}
{{- if and (hasKey $rule "maxMs") (gt (get $ms $name) (float64 (get $rule "maxMs"))) -}}
{{- fail (printf "config.%s: %s is above %s, the most the service takes" $name $value (get $rule "max")) -}}
{{- end -}}
{{- else if and (or (eq $value nil) (eq (toString $value) "")) (hasKey $rule "defaultMs") -}}
{{- $_ := set $ms $name (float64 (get $rule "defaultMs")) -}}
{{- $_ := set $text $name (get $rule "default") -}}
{{- else -}}
{{- $_ := set $ms $name 0.0 -}}
{{- end -}}
{{- end -}}
{{- range $name, $rule := $rules -}}
{{- $v := get $ms $name -}}
{{- if gt $v 0.0 -}}
{{- if and (hasKey $rule "stepMs") (ne (floor (divf $v (get $rule "stepMs"))) (divf $v (get $rule "stepMs"))) -}}
{{- fail (printf "config.%s: %s is not a whole number of %s, as the service needs" $name (get $text $name) (get $rule "step")) -}}
{{- end -}}
{{- if hasKey $rule "divides" -}}
{{- $target := get $rule "divides" -}}
{{- $targetMs := get $rule "dividesMs" | default (get $ms $target) | float64 -}}
{{- if and (gt $targetMs 0.0) (ne (floor (divf $targetMs $v)) (divf $targetMs $v)) -}}
{{- if hasKey $rule "dividesMs" -}}
{{- fail (printf "config.%s: %s does not divide %s evenly, as the service needs" $name (get $text $name) $target) -}}
{{- else -}}
{{- fail (printf "config.%s: %s does not divide %s (%s) evenly, as the service needs" $name (get $text $name) $target (get $text $target)) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if hasKey $rule "atMost" -}}
{{- $other := get $rule "atMost" -}}
{{- if and (gt (get $ms $other) 0.0) (gt $v (get $ms $other)) -}}
{{- fail (printf "config.%s: %s is longer than %s (%s), which the service refuses" $name (get $text $name) $other (get $text $other)) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- /* The kubelet kills a pod at terminationGracePeriodSeconds: the preStop sleep, then at most
SHUTDOWN_TIMEOUT for requests in flight and 10 s more for the service's own stop, must fit. */ -}}
{{- $grace := .Values.terminationGracePeriodSeconds -}}
{{- if and (not (kindIs "invalid" $grace)) (hasKey $ms "SHUTDOWN_TIMEOUT") -}}
{{- $stop := divf (get $ms "SHUTDOWN_TIMEOUT") 1000 -}}
{{- $needs := addf (float64 (.Values.preStopSleepSeconds | default 0)) $stop 10 -}}
{{- if le (float64 $grace) $needs -}}
{{- fail (printf "terminationGracePeriodSeconds: %v is not above preStopSleepSeconds (%v) + SHUTDOWN_TIMEOUT (%vs) + 10s, what the service may take to stop: the kubelet would kill it mid-shutdown" $grace (.Values.preStopSleepSeconds | default 0) $stop) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
The database URL the pods read from a Secret this release writes from values (database.url, else
global.database.url); empty when the URL comes from a Secret of one's own (existingSecret).
*/}}
{{- define "common.inlineDatabaseUrl" -}}
{{- $global := (.Values.global | default dict).database | default dict -}}
{{- $local := .Values.database | default dict -}}
{{- if $local.existingSecret -}}
{{- else if $local.url -}}{{ $local.url }}
{{- else if $global.existingSecret -}}
{{- else if $global.url -}}{{ $global.url }}
{{- end -}}
{{- end -}}

{{/*
Fails the render when a volume repeats a name, a mount names no volume of the pod or repeats a
mount path, the chart's own (tmp, at /tmp) included: (dict "at" <values path> "volumes"
<extraVolumes> "mounts" <extraVolumeMounts> "own" <the chart's own volume names> "ownPaths"
<their mount paths>). Kubernetes would refuse the pod, after install.
*/}}
{{- define "common.checkVolumes" -}}
{{- $own := .own | default list -}}
{{- $names := $own -}}
{{- range .volumes | default list -}}
{{- if has .name $names -}}
{{- fail (printf "%sextraVolumes: the name %q is taken%s; name the volume otherwise" $.at .name (has .name $own | ternary " by the chart's own volume" " twice")) -}}
{{- end -}}
{{- $names = append $names .name -}}
{{- end -}}
{{- $paths := .ownPaths | default list -}}
{{- range .mounts | default list -}}
{{- if not (has .name $names) -}}
{{- fail (printf "%sextraVolumeMounts: %q mounts no volume of the pod; add it to %sextraVolumes" $.at .name $.at) -}}
{{- end -}}
{{- $path := trimSuffix "/" .mountPath | default "/" -}}
{{- if has $path $paths -}}
{{- fail (printf "%sextraVolumeMounts: %q is mounted at %s, where another volume is; mount it elsewhere" $.at .name .mountPath) -}}
{{- end -}}
{{- $paths = append $paths $path -}}
{{- end -}}
{{- end -}}

{{/*
The container's env: what the chart sets (common.env and the chart's own, "env"), then extraEnv.
A variable the chart sets is left out when extraEnv sets <NAME>_FILE, which the service reads it
from instead (setting both is an error to it): DATABASE_URL_FILE, SERVICE_TOKEN_FILE,
GATEWAY_ADMIN_KEY_FILE... name a file of a volume in extraVolumes.
*/}}
{{- define "common.containerEnv" -}}
{{- $env := include "common.env" .ctx | fromYamlArray -}}
{{- with .env }}{{ $env = concat $env (fromYamlArray .) }}{{ end -}}
{{- include "common.mergedEnv" (dict "env" $env "extra" (.ctx.Values.extraEnv | default list)) -}}
{{- end -}}

{{/*
A container's env from what the chart sets ("env", a list) and what values add ("extra", a list):
the chart's variables, less those "extra" sets as <NAME>_FILE, then "extra".
*/}}
{{- define "common.mergedEnv" -}}
{{- $env := .env -}}
{{- $extra := .extra -}}
{{- $files := dict -}}
{{- range $extra -}}
{{- if hasSuffix "_FILE" (toString .name) -}}{{- $_ := set $files (trimSuffix "_FILE" .name) true -}}{{- end -}}
{{- end -}}
{{- $kept := list -}}
{{- range $env -}}
{{- if not (kindIs "map" .) -}}{{- fail (printf "the container env did not render as a list: %v" .) -}}{{- end -}}
{{- if not (hasKey $files .name) -}}{{- $kept = append $kept . -}}{{- end -}}
{{- end -}}
{{- toYaml (concat $kept $extra) -}}
{{- end -}}

{{/*
The Deployment (or StatefulSet) of a service: (dict "ctx" . "kind" "Deployment" "env" <extra env YAML list>
"secrets" <list of the other values the chart writes into Secrets its pods read>).
*/}}
{{- define "common.workload" -}}
{{- $ctx := .ctx -}}
{{- include "common.checkDurations" $ctx -}}
{{- $values := $ctx.Values -}}
{{- include "common.checkVolumes" (dict "at" "" "volumes" $values.extraVolumes "mounts" $values.extraVolumeMounts "own" (list "tmp") "ownPaths" (list "/tmp")) -}}
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
        {{- /* A container reads a Secret's values only when it starts: a changed database URL (or
        admin key) written from values would otherwise reach no running pod until it restarts. */}}
        {{- $secrets := concat (list (include "common.inlineDatabaseUrl" $ctx)) (.secrets | default list) | compact }}
        {{- with $secrets }}
        checksum/secrets: {{ toJson . | sha256sum | trunc 16 }}
        {{- end }}
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
            {{- include "common.containerEnv" (dict "ctx" $ctx "env" .env) | nindent 12 }}
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
            {{- with $values.extraVolumeMounts }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
      volumes:
        - name: tmp
          emptyDir:
            sizeLimit: 64Mi
        {{- with $values.extraVolumes }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
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
