{{/*
What each process is configured with, shared by its Deployment and the `helm test` pod that runs
check-config over it: environment variables (every one documented in `serve --help`), arguments,
volumes and their mounts.
*/}}

{{/* A value as the binaries read it: Helm reads YAML numbers as floats, which would print whole
byte counts as 1.073741824e+09. */}}
{{- define "passsage.scalar" -}}
{{- if and (kindIs "float64" .) (eq (floor .) .) -}}
{{- int64 . -}}
{{- else -}}
{{- toString . -}}
{{- end -}}
{{- end -}}

{{- define "passsage.proxy.publicURL" -}}
{{- default (printf "http://%s.%s.svc.cluster.local:%v" (include "passsage.fullname" .) .Release.Namespace (int64 .Values.service.port)) .Values.passsage.publicProxyURL -}}
{{- end -}}

{{- define "passsage.proxy.env" -}}
{{- $p := .Values.passsage -}}
{{- $t := .Values.timeouts -}}
- name: PASSSAGE_PORT
  value: {{ $p.port | int64 | quote }}
- name: PASSSAGE_HEALTH_PORT
  value: {{ $p.healthPort | int64 | quote }}
- name: PASSSAGE_MITM_CA
  value: /etc/passsage/ca/tls.key
- name: PASSSAGE_MITM_CA_CERT
  value: /etc/passsage/ca/tls.crt
- name: PASSSAGE_POLICY_FILE
  value: /etc/passsage/policy/policies.yaml
- name: PASSSAGE_UPSTREAM_CONNECT_TIMEOUT
  value: {{ $t.upstreamConnect | include "passsage.scalar" | quote }}
- name: PASSSAGE_UPSTREAM_READ_TIMEOUT
  value: {{ $t.upstreamRead | include "passsage.scalar" | quote }}
- name: PASSSAGE_CLIENT_IDLE_TIMEOUT
  value: {{ $t.clientIdle | include "passsage.scalar" | quote }}
- name: PASSSAGE_CLIENT_HEADER_TIMEOUT
  value: {{ $t.clientHeader | include "passsage.scalar" | quote }}
- name: PASSSAGE_SHUTDOWN_GRACE_PERIOD
  value: {{ $t.shutdownGrace | include "passsage.scalar" | quote }}
- name: PASSSAGE_PUBLIC_PROXY_URL
  value: {{ include "passsage.proxy.publicURL" . | quote }}
{{- with $p.noProxyExtra }}
- name: PASSSAGE_NO_PROXY_EXTRA
  value: {{ . | quote }}
{{- end }}
{{- with $p.noIntercept }}
- name: PASSSAGE_NO_INTERCEPT
  value: {{ join "," . | quote }}
{{- end }}
{{- with $p.maxClientConnections }}
- name: PASSSAGE_MAX_CLIENT_CONNECTIONS
  value: {{ . | int64 | quote }}
{{- end }}
{{- if $p.allowPolicyHeader }}
- name: PASSSAGE_ALLOW_POLICY_HEADER
  value: "true"
{{- end }}
{{- if include "passsage.upstreamCA" . }}
- name: PASSSAGE_UPSTREAM_CA_FILE
  value: /etc/passsage/upstream-ca/{{ .Values.upstreamCA.key }}
{{- end }}
{{- if $p.verbose }}
- name: PASSSAGE_VERBOSE
  value: "true"
{{- end }}
- name: PASSSAGE_DATA_DIR
  value: /data/cache
{{- if include "passsage.split" . }}
- name: PASSSAGE_XS3LERATOR_URL
  value: {{ printf "http://%s:%v" (include "passsage.xs3lerator.fullname" .) (int64 .Values.xs3lerator.port) | quote }}
- name: PASSSAGE_XS3LERATOR_AUTH_TOKEN
  {{- include "passsage.authTokenFrom" . | nindent 2 }}
{{- include "passsage.elasticsearch.env" (list . "PASSSAGE_") }}
- name: PASSSAGE_ELASTICSEARCH_META_INDEX
  value: {{ .Values.elasticsearch.index | quote }}
- name: PASSSAGE_ELASTICSEARCH_SHARDS
  value: {{ .Values.elasticsearch.shards | int64 | quote }}
- name: PASSSAGE_ELASTICSEARCH_REPLICAS
  value: {{ .Values.elasticsearch.replicas | int64 | quote }}
- name: PASSSAGE_ELASTICSEARCH_FLUSH_INTERVAL
  value: {{ .Values.elasticsearch.flushInterval | include "passsage.scalar" | quote }}
{{- else }}
- name: PASSSAGE_CACHE_SIZE
  value: {{ $p.embedded.cacheSize | include "passsage.scalar" | quote }}
- name: PASSSAGE_MEMORY_CACHE_SIZE
  value: {{ $p.embedded.memoryCacheSize | include "passsage.scalar" | quote }}
{{- end }}
{{- with $p.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* After the subcommand (serve, check-config). An empty deny list must be an argument: an
empty environment variable counts as unset. */}}
{{- define "passsage.proxy.args" -}}
{{- if kindIs "slice" .Values.passsage.denyUpstream }}
- --deny-upstream
- {{ join "," .Values.passsage.denyUpstream | quote }}
{{- end }}
{{- range .Values.passsage.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end -}}

{{- define "passsage.proxy.volumeMounts" -}}
- name: ca
  mountPath: /etc/passsage/ca
  readOnly: true
- name: policy
  mountPath: /etc/passsage/policy
  readOnly: true
- name: data
  mountPath: /data
- name: tmp
  mountPath: /tmp
{{- include "passsage.upstreamCA.mount" . }}
{{- with .Values.passsage.extraVolumeMounts }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* `include "passsage.proxy.volumes" (list . $persistent)`: the data volume is the claim only
for the Deployment's pod in the embedded mode. */}}
{{- define "passsage.proxy.volumes" -}}
{{- $root := index . 0 -}}
{{- $persistent := index . 1 -}}
{{- $persistence := $root.Values.passsage.embedded.persistence -}}
- name: ca
  secret:
    secretName: {{ include "passsage.caSecretName" $root }}
    defaultMode: 0440
    items:
      - {key: tls.crt, path: tls.crt}
      - {key: tls.key, path: tls.key}
- name: policy
  configMap:
    name: {{ include "passsage.fullname" $root }}-policy
- name: data
{{- if and $persistent (not (include "passsage.split" $root)) $persistence.enabled }}
  persistentVolumeClaim:
    claimName: {{ default (printf "%s-data" (include "passsage.fullname" $root)) $persistence.existingClaim }}
{{- else }}
  emptyDir: {}
{{- end }}
- name: tmp
  emptyDir: {}
{{- include "passsage.upstreamCA.volume" $root }}
{{- with $root.Values.passsage.extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "passsage.xs3lerator.env" -}}
{{- $x := .Values.xs3lerator -}}
{{- $t := .Values.timeouts.xs3lerator -}}
- name: XS3_PORT
  value: {{ $x.port | int64 | quote }}
- name: XS3_HTTP_CONCURRENCY
  value: {{ $x.httpConcurrency | int64 | quote }}
{{- with $x.maxRangeWorkers }}
- name: XS3_MAX_RANGE_WORKERS
  value: {{ . | int64 | quote }}
{{- end }}
- name: XS3_CHUNK_SIZE
  value: {{ $x.chunkSize | include "passsage.scalar" | quote }}
- name: XS3_UPLOAD_CONCURRENCY
  value: {{ $x.uploadConcurrency | int64 | quote }}
- name: XS3_DATA_PREFIX
  value: {{ $x.dataPrefix | quote }}
- name: XS3_TEMP_DIR
  value: /tmp
- name: XS3_DATA_DIR
  value: /data/store
- name: XS3_UPSTREAM_CONNECT_TIMEOUT
  value: {{ $t.upstreamConnect | include "passsage.scalar" | quote }}
- name: XS3_UPSTREAM_READ_TIMEOUT
  value: {{ $t.upstreamRead | include "passsage.scalar" | quote }}
- name: XS3_CLIENT_HEAD_TIMEOUT
  value: {{ $t.clientHead | include "passsage.scalar" | quote }}
- name: XS3_CLIENT_WRITE_STALL_TIMEOUT
  value: {{ $t.clientWriteStall | include "passsage.scalar" | quote }}
- name: XS3_SHUTDOWN_GRACE_PERIOD
  value: {{ $t.shutdownGrace | include "passsage.scalar" | quote }}
- name: XS3_S3_BUCKET
  value: {{ .Values.s3.bucket | quote }}
{{- with .Values.s3.endpoint }}
- name: XS3_S3_ENDPOINT
  value: {{ . | quote }}
{{- end }}
- name: XS3_S3_REGION
  value: {{ .Values.s3.region | quote }}
- name: AWS_REGION
  value: {{ .Values.s3.region | quote }}
{{- include "passsage.elasticsearch.env" (list . "XS3_") }}
- name: XS3_ELASTICSEARCH_INDEX
  value: {{ .Values.elasticsearch.index | quote }}
- name: XS3_AUTH_TOKEN
  {{- include "passsage.authTokenFrom" . | nindent 2 }}
{{- if $x.diskCache.enabled }}
- name: XS3_CACHE_DIR
  value: /cache
- name: XS3_CACHE_LOW_WATERMARK
  value: {{ $x.diskCache.lowWatermark | int64 | quote }}
- name: XS3_CACHE_HIGH_WATERMARK
  value: {{ $x.diskCache.highWatermark | int64 | quote }}
{{- end }}
{{- if include "passsage.upstreamCA" . }}
- name: XS3_UPSTREAM_CA_FILE
  value: /etc/passsage/upstream-ca/{{ .Values.upstreamCA.key }}
{{- end }}
{{- if $x.verbose }}
- name: XS3_VERBOSE
  value: "true"
{{- end }}
{{- with $x.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "passsage.xs3lerator.envFrom" -}}
{{- with .Values.s3.credentialsSecret }}
envFrom:
  - secretRef:
      name: {{ . }}
{{- end }}
{{- end -}}

{{- define "passsage.xs3lerator.volumeMounts" -}}
- name: data
  mountPath: /data
- name: tmp
  mountPath: /tmp
{{- if .Values.xs3lerator.diskCache.enabled }}
- name: cache
  mountPath: /cache
{{- end }}
{{- include "passsage.upstreamCA.mount" . }}
{{- with .Values.xs3lerator.extraVolumeMounts }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "passsage.xs3lerator.volumes" -}}
- name: data
  emptyDir: {}
- name: tmp
  emptyDir: {}
{{- include "passsage.upstreamCA.volume" . }}
{{- with .Values.xs3lerator.extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- $cache := .Values.xs3lerator.diskCache }}
{{- if $cache.enabled }}
# A volume of its own per pod (a generic ephemeral volume, deleted with the pod): xs3lerator
# evicts by its file system's usage, which on an emptyDir would be the node's disk.
- name: cache
  ephemeral:
    volumeClaimTemplate:
      metadata:
        labels:
          {{- include "passsage.selectorLabels" (list . "xs3lerator") | nindent 10 }}
      spec:
        accessModes: [ReadWriteOnce]
        {{- with $cache.storageClass }}
        storageClassName: {{ . | quote }}
        {{- end }}
        resources:
          requests:
            storage: {{ $cache.size }}
{{- end }}
{{- end -}}

{{- define "passsage.containerSecurityContext" -}}
securityContext:
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  capabilities:
    drop: [ALL]
{{- end -}}

{{- define "passsage.podSecurityContext" -}}
securityContext:
  {{- toYaml . | nindent 2 }}
  seccompProfile:
    type: RuntimeDefault
{{- end -}}

{{/* Elasticsearch's URL, from a Secret when it carries credentials, and its API key. `include
"passsage.elasticsearch.env" (list . "PASSSAGE_")` */}}
{{- define "passsage.elasticsearch.env" -}}
{{- $root := index . 0 -}}
{{- $prefix := index . 1 -}}
{{- $es := $root.Values.elasticsearch }}
- name: {{ $prefix }}ELASTICSEARCH_URL
{{- if $es.existingSecret }}
  valueFrom:
    secretKeyRef:
      name: {{ $es.existingSecret }}
      key: url
{{- else }}
  value: {{ $es.url | quote }}
{{- end }}
{{- with $es.apiKeySecret }}
- name: {{ $prefix }}ELASTICSEARCH_API_KEY
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: apiKey
{{- end }}
{{- end -}}

{{- define "passsage.upstreamCA" -}}
{{- if or .Values.upstreamCA.existingSecret .Values.upstreamCA.existingConfigMap }}true{{ end -}}
{{- end -}}

{{- define "passsage.upstreamCA.mount" -}}
{{- if include "passsage.upstreamCA" . }}
- name: upstream-ca
  mountPath: /etc/passsage/upstream-ca
  readOnly: true
{{- end }}
{{- end -}}

{{- define "passsage.upstreamCA.volume" -}}
{{- $ca := .Values.upstreamCA -}}
{{- if $ca.existingSecret }}
- name: upstream-ca
  secret:
    secretName: {{ $ca.existingSecret }}
    items:
      - {key: {{ $ca.key }}, path: {{ $ca.key }}}
{{- else if $ca.existingConfigMap }}
- name: upstream-ca
  configMap:
    name: {{ $ca.existingConfigMap }}
    items:
      - {key: {{ $ca.key }}, path: {{ $ca.key }}}
{{- end }}
{{- end -}}

{{/* What the schema cannot say: relations between values. */}}
{{- define "passsage.validate" -}}
{{- $p := .Values.passsage -}}
{{- $x := .Values.xs3lerator -}}
{{- if eq (int $p.port) (int $p.healthPort) -}}
{{- fail "passsage.port and passsage.healthPort must differ" -}}
{{- end -}}
{{- if ge (int $x.diskCache.lowWatermark) (int $x.diskCache.highWatermark) -}}
{{- fail "xs3lerator.diskCache.lowWatermark must be below highWatermark" -}}
{{- end -}}
{{- range $name, $values := dict "passsage" $p "xs3lerator" $x -}}
{{- if gt (int $values.autoscaling.minReplicas) (int $values.autoscaling.maxReplicas) -}}
{{- fail (printf "%s.autoscaling.minReplicas must not exceed maxReplicas" $name) -}}
{{- end -}}
{{- end -}}
{{- if and .Values.upstreamCA.existingSecret .Values.upstreamCA.existingConfigMap -}}
{{- fail "upstreamCA: give existingSecret or existingConfigMap, not both" -}}
{{- end -}}
{{- end -}}
