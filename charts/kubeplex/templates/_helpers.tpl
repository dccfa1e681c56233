{{- define "kubeplex.fullname" -}}{{ .Release.Name | trunc 40 | trimSuffix "-" }}{{- end -}}
{{/* kubeplex.image renders REPOSITORY/COMPONENT:TAG; call with (list $ "router"). */}}
{{- define "kubeplex.image" -}}
{{- $root := index . 0 -}}{{ $root.Values.image.repository }}/{{ index . 1 }}:{{ default $root.Chart.AppVersion $root.Values.image.tag }}
{{- end -}}
{{- define "kubeplex.labels" -}}
app.kubernetes.io/name: kubeplex
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}
{{- define "kubeplex.routerURL" -}}http://{{ include "kubeplex.fullname" . }}-router.{{ .Release.Namespace }}.svc:{{ .Values.router.httpPort }}/logs{{- end -}}
