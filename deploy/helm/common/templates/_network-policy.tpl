{{/*
The peers that may scrape /metrics (Prometheus): this chart's networkPolicy.metricsFrom, else
global.networkPolicy.metricsFrom, else Prometheus pods in any namespace, labelled as the
Prometheus Operator labels them. An empty list (not null) allows none.
*/}}
{{- define "common.metricsPeers" -}}
{{- $global := (.Values.global | default dict).networkPolicy | default dict -}}
{{- $peers := .Values.networkPolicy.metricsFrom -}}
{{- if not (kindIs "slice" $peers) -}}{{- $peers = $global.metricsFrom -}}{{- end -}}
{{- if not (kindIs "slice" $peers) -}}
{{- $peers = list (dict "namespaceSelector" dict "podSelector" (dict "matchLabels" (dict "app.kubernetes.io/name" "prometheus"))) -}}
{{- end -}}
{{- toYaml $peers -}}
{{- end -}}

{{/*
Who may open a connection to a service's pods: (dict "ctx" . "open" <bool>). Ingress only
(policyTypes: [Ingress]): egress is not restricted, so the collector still scrapes dcgm-exporter
on every node and every pod reaches Postgres, DNS and its OTLP endpoint.

Allowed, on the service port alone: this release's own pods, the metrics peers and
networkPolicy.ingressFrom. With "open" (the gateway, the front door) and no ingressFrom: anyone.
NetworkPolicy cannot tell paths apart, so the metrics peers reach the whole port: the service
token guards every route but /healthz, /readyz and /metrics. Kubelet probes come from the node,
which most CNIs (Calico, Cilium, ...) let through whatever the policy says.
Rendered when networkPolicy.enabled and global.networkPolicy.enabled (default true) hold.
*/}}
{{- define "common.networkPolicy" -}}
{{- $ctx := .ctx -}}
{{- $global := ($ctx.Values.global | default dict).networkPolicy | default dict -}}
{{- with $ctx.Values.networkPolicy -}}
{{- if and .enabled (or (not (hasKey $global "enabled")) $global.enabled) -}}
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ include "common.fullname" $ctx }}
  labels:
    {{- include "common.labels" $ctx | nindent 4 }}
spec:
  podSelector:
    matchLabels:
      {{- include "common.selectorLabels" $ctx | nindent 6 }}
  policyTypes: [Ingress]
  ingress:
    - ports:
        - port: {{ $ctx.Values.containerPort }}
          protocol: TCP
      {{- if not (and $.open (not .ingressFrom)) }}
      from:
        # The gpu-telemetry pods of this release.
        - podSelector:
            matchLabels:
              {{- include "common.releasePodLabels" $ctx | nindent 14 }}
        {{- with include "common.metricsPeers" $ctx | fromYamlArray }}
        # Prometheus, for /metrics.
        {{- toYaml . | nindent 8 }}
        {{- end }}
        {{- with .ingressFrom }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- end }}
{{- end -}}
{{- end -}}
{{- end -}}
