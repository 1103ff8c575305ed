{{- define "hermes-rollouts.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "hermes-rollouts.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "hermes-rollouts.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: controller
{{- end -}}

{{- define "hermes-rollouts.serviceAccountName" -}}
{{- default (include "hermes-rollouts.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "hermes-rollouts.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "hermes-rollouts.runnerImagePullPolicy" -}}
{{- default .Values.image.pullPolicy .Values.controller.runnerImagePullPolicy -}}
{{- end -}}

{{- /* The Secret holding the CA that signs the mock Modal's TLS certificate (only with mockModal.enabled). */ -}}
{{- define "hermes-rollouts.mockModalCaSecret" -}}
{{- default (printf "%s-mock-modal-ca" (include "hermes-rollouts.fullname" .)) .Values.mockModal.caSecretName -}}
{{- end -}}
