{{- define "common.service" -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "common.fullname" . }}
  labels:
    {{- include "common.labels" . | nindent 4 }}
  {{- with .Values.service.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  type: {{ .Values.service.type }}
  selector:
    {{- include "common.selectorLabels" . | nindent 4 }}
  ports:
    - name: http
      port: {{ .Values.service.port }}
      targetPort: http
      protocol: TCP
      {{- if and (eq .Values.service.type "NodePort") .Values.service.nodePort }}
      nodePort: {{ .Values.service.nodePort }}
      {{- end }}
    {{- $internal := include "common.internalPort" . | int }}
    {{- if ne (int .Values.service.port) $internal }}
    # Where the release's other services reach this one, whatever service.port says.
    - name: internal
      port: {{ $internal }}
      targetPort: http
      protocol: TCP
    {{- end }}
{{- end -}}

{{- define "common.serviceAccount" -}}
{{- if .Values.serviceAccount.create -}}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ include "common.serviceAccountName" . }}
  labels:
    {{- include "common.labels" . | nindent 4 }}
  {{- with .Values.serviceAccount.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
automountServiceAccountToken: false
{{- end -}}
{{- end -}}

{{- define "common.hpa" -}}
{{- with .Values.autoscaling -}}
{{- if .enabled -}}
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ include "common.fullname" $ }}
  labels:
    {{- include "common.labels" $ | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ include "common.fullname" $ }}
  {{- if gt (int .minReplicas) (int .maxReplicas) }}
  {{- fail (printf "autoscaling.minReplicas (%v) must not be above autoscaling.maxReplicas (%v)" .minReplicas .maxReplicas) }}
  {{- end }}
  minReplicas: {{ .minReplicas }}
  maxReplicas: {{ .maxReplicas }}
  metrics:
    {{- if .targetCPUUtilizationPercentage }}
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ .targetCPUUtilizationPercentage }}
    {{- end }}
    {{- if .targetMemoryUtilizationPercentage }}
    - type: Resource
      resource:
        name: memory
        target:
          type: Utilization
          averageUtilization: {{ .targetMemoryUtilizationPercentage }}
    {{- end }}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "common.pdb" -}}
{{- with .Values.podDisruptionBudget -}}
{{- if .enabled -}}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "common.fullname" $ }}
  labels:
    {{- include "common.labels" $ | nindent 4 }}
spec:
  {{- /* 0 is a value here (maxUnavailable: 0 blocks evictions): only unset falls back. */}}
  {{- if not (kindIs "invalid" .minAvailable) }}
  minAvailable: {{ .minAvailable }}
  {{- else }}
  maxUnavailable: {{ kindIs "invalid" .maxUnavailable | ternary 1 .maxUnavailable }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "common.selectorLabels" $ | nindent 6 }}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "common.serviceMonitor" -}}
{{- with .Values.serviceMonitor -}}
{{- if .enabled -}}
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata:
  name: {{ include "common.fullname" $ }}
  namespace: {{ .namespace | default $.Release.Namespace }}
  labels:
    {{- include "common.labels" $ | nindent 4 }}
    {{- with .labels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  namespaceSelector:
    matchNames: [{{ $.Release.Namespace | quote }}]
  selector:
    matchLabels:
      {{- include "common.selectorLabels" $ | nindent 6 }}
    # Not a StatefulSet's governing (headless) Service too: its pods would be scraped twice.
    matchExpressions:
      - { key: gpu-telemetry.io/headless, operator: DoesNotExist }
  endpoints:
    - port: http
      path: /metrics
      interval: {{ .interval | quote }}
      scrapeTimeout: {{ .scrapeTimeout | quote }}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
The migration Job, run from the same image before install and upgrade (hooks):
(dict "ctx" . "name" <job name>). Concurrent runs are safe: the runner holds an advisory lock.
Its pod is named <chart>-migrate, not <chart>: with the service's own selector labels it would be
one of the pods the service's Service, PodDisruptionBudget (whose eviction budget a Job's pod
leaves uncomputable: no drain of the service's nodes while it exists) and StatefulSet select.
*/}}
{{- define "common.migrationJob" -}}
{{- $ctx := .ctx -}}
{{- with $ctx.Values.migrations -}}
{{- if .enabled -}}
{{- include "common.checkVolumes" (dict "at" "migrations." "volumes" .extraVolumes "mounts" .extraVolumeMounts) -}}
apiVersion: batch/v1
kind: Job
metadata:
  name: {{ $.name }}
  labels:
    {{- include "common.labels" $ctx | nindent 4 }}
    app.kubernetes.io/component: migrate
  annotations:
    helm.sh/hook: pre-install,pre-upgrade
    helm.sh/hook-weight: "-5"
    helm.sh/hook-delete-policy: before-hook-creation,hook-succeeded
spec:
  backoffLimit: {{ .backoffLimit }}
  activeDeadlineSeconds: {{ .activeDeadlineSeconds }}
  ttlSecondsAfterFinished: 3600
  template:
    metadata:
      labels:
        app.kubernetes.io/name: {{ include "common.name" $ctx }}-migrate
        app.kubernetes.io/instance: {{ $ctx.Release.Name }}
        app.kubernetes.io/component: migrate
    spec:
      restartPolicy: Never
      automountServiceAccountToken: false
      {{- with include "common.imagePullSecrets" $ctx }}
      {{- . | nindent 6 }}
      {{- end }}
      securityContext:
        {{- toYaml $ctx.Values.podSecurityContext | nindent 8 }}
      containers:
        - name: migrate
          image: {{ include "common.image" $ctx | quote }}
          imagePullPolicy: {{ include "common.imagePullPolicy" $ctx }}
          args: ["migrate", "up"]
          env:
            {{- include "common.mergedEnv" (dict "env" (include "common.databaseEnv" $ctx | fromYamlArray) "extra" (.extraEnv | default list)) | nindent 12 }}
          resources:
            {{- toYaml .resources | nindent 12 }}
          securityContext:
            {{- toYaml $ctx.Values.securityContext | nindent 12 }}
          {{- with .extraVolumeMounts }}
          volumeMounts:
            {{- toYaml . | nindent 12 }}
          {{- end }}
      {{- with .extraVolumes }}
      volumes:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Everything a service chart renders besides its workload. */}}
{{- define "common.supporting" -}}
{{ include "common.service" . }}
{{- with include "common.serviceAccount" . }}
---
{{ . }}
{{- end }}
{{- with include "common.hpa" . }}
---
{{ . }}
{{- end }}
{{- with include "common.pdb" . }}
---
{{ . }}
{{- end }}
{{- with include "common.serviceMonitor" . }}
---
{{ . }}
{{- end }}
{{- with include "common.migrationJob" (dict "ctx" . "name" (printf "%s-migrate" (include "common.fullname" .))) }}
---
{{ . }}
{{- end }}
{{- if and .Values.database.url (not .Values.database.existingSecret) }}
---
{{ include "common.databaseSecret" (dict "ctx" . "name" (printf "%s-database" (include "common.fullname" .)) "url" .Values.database.url "key" (.Values.database.secretKey | default "DATABASE_URL")) }}
{{- end }}
{{- end -}}
