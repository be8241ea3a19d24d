{{/*
A byte size as the queue reads one (QUEUE_BODY_LIMIT, QUEUE_PUBLISH_MEMORY: 64mb, 32 MB, or a
byte count), in bytes: (dict "value" <config value> "default" <bytes when unset>).
*/}}
{{- define "queue.bytes" -}}
{{- $value := .value -}}
{{- if or (kindIs "invalid" $value) (eq (toString $value) "") -}}
{{- .default -}}
{{- else if or (kindIs "float64" $value) (kindIs "int64" $value) (kindIs "int" $value) -}}
{{- int64 $value -}}
{{- else -}}
{{- $text := lower (toString $value) | nospace -}}
{{- $number := regexFind "^[0-9]+" $text -}}
{{- $units := dict "" 1 "b" 1 "kb" 1024 "mb" 1048576 "gb" 1073741824 -}}
{{- mul (int64 $number) (get $units (trimPrefix $number $text)) -}}
{{- end -}}
{{- end -}}

{{/* A Kubernetes memory quantity (512Mi, 1G, 536870912) in bytes; 0 when it is not one of those forms. */}}
{{- define "queue.quantity" -}}
{{- $text := kindIs "float64" . | ternary (printf "%d" (int64 .)) (toString .) -}}
{{- $number := regexFind "^[0-9]+(\\.[0-9]+)?" $text -}}
{{- $units := dict "" 1 "k" 1000 "M" 1000000 "G" 1000000000 "T" 1000000000000 "Ki" 1024 "Mi" 1048576 "Gi" 1073741824 "Ti" 1099511627776 -}}
{{- $unit := trimPrefix $number $text -}}
{{- if and $number (hasKey $units $unit) -}}
{{- mulf (float64 $number) (get $units $unit) -}}
{{- else -}}
0
{{- end -}}
{{- end -}}

{{/*
Fails the render when resources.limits.memory cannot hold what publishes may take: the queue holds
at most QUEUE_PUBLISH_MEMORY of publish bodies at once (never less than QUEUE_BODY_LIMIT, so one
body of the largest size always fits), and each costs up to three times its size while it is
stored (the body, the json[] parameter made of its payloads, the driver's copy), beside the 192Mi
the service uses without them (heap, connection pool, leases of up to QUEUE_RESPONSE_LIMIT).
A pod under that limit would be OOM-killed by a burst of large publishes instead of answering 503.
*/}}
{{- define "queue.checkMemory" -}}
{{- $config := .Values.config | default dict -}}
{{- /* The queue refuses to start with a budget under 1mb, which the schema cannot compare. */ -}}
{{- $set := get $config "QUEUE_PUBLISH_MEMORY" -}}
{{- if and (not (kindIs "invalid" $set)) (ne (toString $set) "") (lt (include "queue.bytes" (dict "value" $set "default" 0) | float64) 1048576.0) -}}
{{- fail (printf "config.QUEUE_PUBLISH_MEMORY: %s is below 1mb, the least the queue takes" (kindIs "string" $set | ternary $set (int64 $set | toString))) -}}
{{- end -}}
{{- $limit := ((.Values.resources | default dict).limits | default dict).memory -}}
{{- if $limit -}}
{{- $body := include "queue.bytes" (dict "value" (get $config "QUEUE_BODY_LIMIT") "default" 33554432) | float64 -}}
{{- $budget := include "queue.bytes" (dict "value" (get $config "QUEUE_PUBLISH_MEMORY") "default" 67108864) | float64 -}}
{{- $budget = maxf $budget $body -}}
{{- $baseline := 201326592.0 -}}
{{- $needs := addf $baseline (mulf 3 $budget) -}}
{{- $has := include "queue.quantity" $limit | float64 -}}
{{- if and (gt $has 0.0) (lt $has $needs) -}}
{{- fail (printf "resources.limits.memory: %v cannot hold the queue's publishes: 3 x %dMi of bodies at once (QUEUE_PUBLISH_MEMORY, never below QUEUE_BODY_LIMIT) + 192Mi for the rest of the service = %dMi; raise the limit to that or lower QUEUE_PUBLISH_MEMORY" $limit (int64 (divf $budget 1048576)) (int64 (ceil (divf $needs 1048576)))) -}}
{{- end -}}
{{- end -}}
{{- end -}}
