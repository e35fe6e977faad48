{{/* Names and labels, in the shape `helm create` uses so tooling recognises them. */}}
{{- define "cm-server.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "cm-server.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "cm-server.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cm-server.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "cm-server.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "cm-server.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: scalable-shop
{{- end }}

{{/*
Labels of helm test pods: deliberately not the selector labels, or the Deployment's ReplicaSet
would adopt the test pod and the Service would send it traffic.
*/}}
{{- define "cm-server.testLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "cm-server.name" . }}-test
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: helm-test
{{- end }}

{{- define "cm-server.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "cm-server.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "cm-server.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/* The Secret holding the Kafka credentials: the operator's own, or the one this chart makes. */}}
{{- define "cm-server.secretName" -}}
{{- default (include "cm-server.fullname" .) .Values.credentials.existingSecret }}
{{- end }}

{{/*
Refuse values that would deploy something broken, at render time, with the reason.
*/}}
{{- define "cm-server.validate" -}}
{{- if and (eq .Values.auth.mode "jwt") (or (not .Values.auth.issuer) (not .Values.auth.audience) (not .Values.auth.secretName)) }}
{{- fail "auth.mode jwt needs auth.issuer, auth.audience and auth.secretName (the Secret holding cm-api-service-token)" }}
{{- end }}
{{- if and .Values.httpRoute.enabled (ne .Values.auth.mode "jwt") (not .Values.httpRoute.allowUnauthenticated) }}
{{- fail "httpRoute.enabled with auth.mode none publishes POST /buy and every purchase list to anyone: set auth.mode jwt, or httpRoute.allowUnauthenticated true if that is meant" }}
{{- end }}
{{- if and .Values.httpRoute.timeouts .Values.httpRoute.nginxGatewayFabric.policies }}
{{- fail "httpRoute.timeouts and httpRoute.nginxGatewayFabric.policies are both on: NGINX Gateway Fabric refuses an HTTPRoute rule with timeouts, so turn httpRoute.timeouts off with its policies" }}
{{- end }}
{{- if and .Values.ingress.enabled (ne .Values.auth.mode "jwt") (not .Values.ingress.allowUnauthenticated) }}
{{- fail "ingress.enabled with auth.mode none publishes POST /buy and every purchase list to anyone: set auth.mode jwt, or ingress.allowUnauthenticated true if that is meant" }}
{{- end }}
{{- if not .Values.kafka.brokers }}
{{- fail "kafka.brokers is required: the Kafka bootstrap servers, host:port[,host:port...]" }}
{{- end }}
{{- if not .Values.cmApi.host }}
{{- fail "cmApi.host is required: cm-api's host:port, e.g. cm-api:3000" }}
{{- end }}
{{- if le (int .Values.shutdownTimeoutSeconds) (add (div (int .Values.kafka.deliveryTimeoutMs) 1000) 5 | int) }}
{{- fail (printf "shutdownTimeoutSeconds (%d) must exceed kafka.deliveryTimeoutMs (%d ms) by more than 5 s, or purchases in flight at shutdown are cut off" (int .Values.shutdownTimeoutSeconds) (int .Values.kafka.deliveryTimeoutMs)) }}
{{- end }}
{{- if and .Values.kafka.sasl.enabled (not .Values.credentials.existingSecret) (or (not .Values.credentials.kafkaUsername) (not .Values.credentials.kafkaPassword)) }}
{{- fail "kafka.sasl.enabled needs credentials.existingSecret, or credentials.kafkaUsername and credentials.kafkaPassword for the chart to put in a Secret" }}
{{- end }}
{{- if and .Values.autoscaling.enabled (gt (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas)) }}
{{- fail "autoscaling.minReplicas must not exceed autoscaling.maxReplicas" }}
{{- end }}
{{- if and .Values.ingress.enabled (not .Values.ingress.host) }}
{{- fail "ingress.enabled needs ingress.host: the Ingress uses a regex path, and ingress-nginx's use-regex on an Ingress without a host turns regex matching on for every host-less Ingress of the controller" }}
{{- end }}
{{- if and .Values.autoscaling.enabled (eq .Values.autoscaling.type "keda") (not .Values.autoscaling.keda.query) (not (or .Values.metrics.podAnnotations .Values.metrics.serviceMonitor.enabled)) }}
{{- fail "autoscaling.type keda scales on cm-server's request rate from Prometheus, but metrics.podAnnotations and metrics.serviceMonitor.enabled are both off: nothing would scrape it (or give autoscaling.keda.query)" }}
{{- end }}
{{- end }}

{{/*
Authentication (docs/SECURITY.md): the environment. The keys themselves are files (below).
*/}}
{{- define "cm-server.authEnv" -}}
- name: AUTH_MODE
  value: {{ .Values.auth.mode | quote }}
{{- if eq .Values.auth.mode "jwt" }}
- name: AUTH_ISSUER
  value: {{ .Values.auth.issuer | quote }}
- name: AUTH_AUDIENCE
  value: {{ .Values.auth.audience | quote }}
- name: AUTH_CLOCK_LEEWAY_S
  value: {{ .Values.auth.clockLeewaySeconds | quote }}
{{- if .Values.auth.jwksConfigMap.name }}
- name: AUTH_JWKS_FILE
  value: /etc/scalable-shop/jwks/{{ .Values.auth.jwksConfigMap.key }}
- name: AUTH_JWKS_RELOAD_S
  value: {{ .Values.auth.jwksReloadSeconds | quote }}
{{- end }}
{{- end }}
{{- if (or .Values.kafka.sasl.enabled (eq .Values.auth.mode "jwt")) }}
- name: SECRETS_DIR
  value: /etc/scalable-shop/secrets
{{- end }}
{{- end }}

{{/*
Every credential is a file, never an environment variable (readable in /proc, crash dumps and many
tools' describe): the credentials Secret's keys under the names the service reads
(docs/CONTRACT.md) and the auth Secret, projected into one directory, SECRETS_DIR. The key set is a
ConfigMap mounted as a directory (not subPath), so Kubernetes updates it in place and the service
reads it again.
*/}}
{{- define "cm-server.volumeMounts" -}}
{{- if (or .Values.kafka.sasl.enabled (eq .Values.auth.mode "jwt")) }}
- name: secrets
  mountPath: /etc/scalable-shop/secrets
  readOnly: true
{{- end }}
{{- if .Values.kafka.tls.caSecret.name }}
- name: kafka-ca
  mountPath: /etc/scalable-shop/kafka-ca
  readOnly: true
{{- end }}
{{- if and (eq .Values.auth.mode "jwt") .Values.auth.jwksConfigMap.name }}
- name: auth-jwks
  mountPath: /etc/scalable-shop/jwks
  readOnly: true
{{- end }}
{{- end }}

{{- define "cm-server.volumes" -}}
{{- if (or .Values.kafka.sasl.enabled (eq .Values.auth.mode "jwt")) }}
- name: secrets
  projected:
    sources:
      {{- if .Values.kafka.sasl.enabled }}
      - secret:
          name: {{ include "cm-server.secretName" . }}
          items:
            {{- if .Values.kafka.sasl.enabled }}
            - key: {{ .Values.credentials.keys.kafkaUsername }}
              path: kafka-username
            - key: {{ .Values.credentials.keys.kafkaPassword }}
              path: kafka-password
            {{- end }}
      {{- end }}
      {{- if eq .Values.auth.mode "jwt" }}
      - secret:
          name: {{ .Values.auth.secretName }}
      {{- end }}
{{- end }}
{{- if .Values.kafka.tls.caSecret.name }}
- name: kafka-ca
  secret:
    secretName: {{ .Values.kafka.tls.caSecret.name }}
{{- end }}
{{- if and (eq .Values.auth.mode "jwt") .Values.auth.jwksConfigMap.name }}
- name: auth-jwks
  configMap:
    name: {{ .Values.auth.jwksConfigMap.name }}
{{- end }}
{{- end }}

{{/*
Traces (docs/OBSERVABILITY.md), by the standard OpenTelemetry variables only; nothing without an
endpoint. The pod's name, namespace and node become resource attributes through the downward API.
*/}}
{{- define "cm-server.tracingEnv" -}}
{{- if .Values.tracing.endpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ .Values.tracing.endpoint | quote }}
- name: OTEL_EXPORTER_OTLP_PROTOCOL
  value: http/protobuf
- name: OTEL_SERVICE_NAME
  value: cm-server
- name: OTEL_TRACES_SAMPLER
  value: {{ .Values.tracing.sampler | quote }}
{{- if hasSuffix "traceidratio" .Values.tracing.sampler }}
- name: OTEL_TRACES_SAMPLER_ARG
  value: {{ .Values.tracing.ratio | quote }}
{{- end }}
- name: K8S_POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: K8S_NAMESPACE_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
- name: K8S_NODE_NAME
  valueFrom:
    fieldRef:
      fieldPath: spec.nodeName
{{- $attributes := list "k8s.pod.name=$(K8S_POD_NAME)" "k8s.namespace.name=$(K8S_NAMESPACE_NAME)" "k8s.node.name=$(K8S_NODE_NAME)" (printf "service.version=%s" .Chart.AppVersion) }}
{{- range $key, $value := .Values.tracing.resourceAttributes }}
{{- $attributes = append $attributes (printf "%s=%s" $key $value) }}
{{- end }}
- name: OTEL_RESOURCE_ATTRIBUTES
  value: {{ join "," $attributes | quote }}
{{- end }}
{{- end }}
