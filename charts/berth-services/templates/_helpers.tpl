{{/* "registry/repository:tag" of one service's values. */}}
{{- define "berth-services.image" -}}
{{- $root := index . 0 }}{{- $svc := index . 1 }}
{{- $repo := $svc.image.repository }}
{{- if $root.Values.registry }}{{- $repo = printf "%s/%s" $root.Values.registry $repo }}{{- end }}
{{- printf "%s:%s" $repo (default $root.Chart.AppVersion $svc.image.tag) }}
{{- end }}

{{/* Pull policy and placement, the same for every service (root context). */}}
{{- define "berth-services.pods" -}}
{{- with .Values.imagePullPolicy }}
imagePullPolicy: {{ . }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{- define "berth-services.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: berth-shop
{{- end }}

{{/* The env every service gets: log format and DATABASE_URL from its Secret. */}}
{{- define "berth-services.env" -}}
- name: LOG_FORMAT
  value: {{ .logFormat | quote }}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ .database.secretName }}
      key: {{ .database.key }}
      optional: {{ .database.optional }}
{{- end }}
