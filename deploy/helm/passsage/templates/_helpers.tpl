{{/* Names: <release>-passsage, or the release name when it already says passsage. */}}
{{- define "passsage.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 52 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "passsage.xs3lerator.fullname" -}}
{{- printf "%s-xs3lerator" (include "passsage.fullname" .) -}}
{{- end -}}

{{- define "passsage.split" -}}
{{- if eq .Values.mode "split" }}true{{ end -}}
{{- end -}}

{{- define "passsage.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Selector labels of one component: `include "passsage.selectorLabels" (list . "proxy")`. */}}
{{- define "passsage.selectorLabels" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ $root.Chart.Name }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "passsage.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "passsage.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "passsage.caSecretName" -}}
{{- default (printf "%s-ca" (include "passsage.fullname" .)) .Values.ca.existingSecret -}}
{{- end -}}

{{- define "passsage.authSecretName" -}}
{{- default (printf "%s-auth" (include "passsage.fullname" .)) .Values.auth.existingSecret -}}
{{- end -}}

{{/* `include "passsage.image" (list . "passsage")` */}}
{{- define "passsage.image" -}}
{{- $root := index . 0 -}}
{{- $image := index $root.Values.image (index . 1) -}}
{{- printf "%s:%s" $image.repository (default $root.Chart.AppVersion $image.tag) -}}
{{- end -}}

{{/* A duration value (500ms, 30s, 5m, 1h or seconds) as whole seconds, rounded up. */}}
{{- define "passsage.seconds" -}}
{{- $text := lower (toString .) -}}
{{- $seconds := 0.0 -}}
{{- if hasSuffix "ms" $text -}}
{{- $seconds = divf (float64 (trimSuffix "ms" $text)) 1000 -}}
{{- else if hasSuffix "s" $text -}}
{{- $seconds = float64 (trimSuffix "s" $text) -}}
{{- else if hasSuffix "m" $text -}}
{{- $seconds = mulf (float64 (trimSuffix "m" $text)) 60 -}}
{{- else if hasSuffix "h" $text -}}
{{- $seconds = mulf (float64 (trimSuffix "h" $text)) 3600 -}}
{{- else -}}
{{- $seconds = float64 $text -}}
{{- end -}}
{{- ceil $seconds | int -}}
{{- end -}}

{{/* The pod's stop budget: the preStop pause, the drain, and ten seconds to exit. */}}
{{- define "passsage.terminationGracePeriod" -}}
{{- $root := index . 0 -}}
{{- add $root.Values.timeouts.preStopSeconds (include "passsage.seconds" (index . 1)) 10 -}}
{{- end -}}

{{/* Required-or-preferred anti-affinity spreading one component over nodes. */}}
{{- define "passsage.affinity" -}}
{{- $root := index . 0 -}}
{{- $values := index . 1 -}}
{{- $component := index . 2 -}}
{{- if $values.affinity }}
affinity:
  {{- toYaml $values.affinity | nindent 2 }}
{{- else if eq $values.antiAffinity "hard" }}
affinity:
  podAntiAffinity:
    requiredDuringSchedulingIgnoredDuringExecution:
      - topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels:
            {{- include "passsage.selectorLabels" (list $root $component) | nindent 12 }}
{{- else if eq $values.antiAffinity "soft" }}
affinity:
  podAntiAffinity:
    preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 100
        podAffinityTerm:
          topologyKey: kubernetes.io/hostname
          labelSelector:
            matchLabels:
              {{- include "passsage.selectorLabels" (list $root $component) | nindent 14 }}
{{- end }}
{{- end -}}

{{/* The data-plane token as an env var value source. */}}
{{- define "passsage.authTokenFrom" -}}
valueFrom:
  secretKeyRef:
    name: {{ include "passsage.authSecretName" . }}
    key: token
{{- end -}}
