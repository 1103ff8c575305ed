import type { V1EnvVar, V1OwnerReference, V1Pod, V1Secret } from "@kubernetes/client-node";
import { API_VERSION, type RolloutJob, type RolloutJobSpec } from "../../api/index.ts";
import { TOKENIZER_CONFIGMAP_DIRECTORY } from "../../rollout/tokenizer-mount.ts";

export const JOB_LABEL = "hermes-rollouts.dev/job";
export const RUNNER_INDEX_LABEL = "hermes-rollouts.dev/runner-index";
export const TOKEN_KEY = "token";
/** Held until the job's runners are stopped, its slot leases released and its token Secret deleted. */
export const JOB_FINALIZER = "hermes-rollouts.dev/runner-leases";

export interface RunnerPodSettings {
  /** Where runner pods reach the runners' API, e.g. http://10.0.0.5:8080. */
  apiURL: string;
  /** The controller's own image, used when the job names none. */
  defaultImage: string;
  imagePullPolicy: "Always" | "IfNotPresent" | "Never";
}

/** Runners renew an item lease every third of its TTL; it lapses only when renewals stop (the runner is gone). */
export const WORK_LEASE_MARGIN_SECONDS = 5;
const WORK_LEASE_MAX_HEARTBEAT_SECONDS = 60;

/**
 * How long an item stays with a runner that stopped renewing: the trajectory timeout (capped, since a live runner
 * renews anyway) plus a margin for one missed renewal. A job with short trajectories gets a dead runner's items back soon.
 */
export function workLeaseTTLMs(limits: Pick<RolloutJobSpec["limits"], "trajectoryTimeoutSeconds">): number {
  return (Math.min(limits.trajectoryTimeoutSeconds, WORK_LEASE_MAX_HEARTBEAT_SECONDS) + WORK_LEASE_MARGIN_SECONDS) * 1000;
}

export const tokenSecretName = (job: RolloutJob) => `${job.metadata.name}-runner-token`;
export const runnerPodName = (job: RolloutJob, index: number) => `${job.metadata.name}-runner-${index}`;

export function ownerReference(job: RolloutJob): V1OwnerReference {
  return {
    apiVersion: API_VERSION,
    kind: "RolloutJob",
    name: job.metadata.name,
    uid: job.metadata.uid ?? "",
    controller: true,
    blockOwnerDeletion: true,
  };
}

/** The per-job runner token, owned by the job so it goes when the job does. */
export function tokenSecret(job: RolloutJob, token: string): V1Secret {
  return {
    apiVersion: "v1",
    kind: "Secret",
    metadata: {
      name: tokenSecretName(job),
      namespace: job.metadata.namespace,
      labels: { [JOB_LABEL]: job.metadata.name },
      ownerReferences: [ownerReference(job)],
    },
    type: "Opaque",
    stringData: { [TOKEN_KEY]: token },
  };
}

/** Runner pod `index` of a job: a pure function of the job, its validated spec and the controller's settings. */
export function runnerPod(job: RolloutJob, spec: RolloutJobSpec, index: number, settings: RunnerPodSettings): V1Pod {
  const env: V1EnvVar[] = [
    { name: "HERMES_API_URL", value: settings.apiURL },
    { name: "HERMES_JOB_NAMESPACE", value: job.metadata.namespace },
    { name: "HERMES_JOB_NAME", value: job.metadata.name },
    { name: "HERMES_RUNNER_ID", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } },
    { name: "HERMES_JOB_TOKEN", valueFrom: { secretKeyRef: { name: tokenSecretName(job), key: TOKEN_KEY } } },
  ];
  if (spec.model.apiKeySecretRef) {
    env.push({
      name: "OPENAI_API_KEY",
      valueFrom: { secretKeyRef: { name: spec.model.apiKeySecretRef.name, key: spec.model.apiKeySecretRef.key } },
    });
  }
  const hubToken = spec.model.tokenizer?.huggingFace?.tokenSecretRef;
  if (hubToken) env.push({ name: "HF_TOKEN", valueFrom: { secretKeyRef: { name: hubToken.name, key: hubToken.key } } });
  // The whole ConfigMap, every key a file (chat_template.jinja is optional); a missing ConfigMap holds the pod in
  // ContainerCreating with a FailedMount event naming it, as a missing Secret of a secretKeyRef does.
  const tokenizerConfigMap = spec.model.tokenizer?.configMap;
  const tokenizerVolume = tokenizerConfigMap && {
    volumes: [{ name: "tokenizer", configMap: { name: tokenizerConfigMap.name } }],
    volumeMounts: [{ name: "tokenizer", mountPath: TOKENIZER_CONFIGMAP_DIRECTORY, readOnly: true }],
  };
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name: runnerPodName(job, index),
      namespace: job.metadata.namespace,
      labels: { [JOB_LABEL]: job.metadata.name, [RUNNER_INDEX_LABEL]: String(index), "app.kubernetes.io/component": "runner" },
      ownerReferences: [ownerReference(job)],
    },
    spec: {
      restartPolicy: "OnFailure",
      // Short: on SIGTERM a runner only hands its items back.
      terminationGracePeriodSeconds: 10,
      automountServiceAccountToken: false,
      ...(spec.runners.serviceAccountName ? { serviceAccountName: spec.runners.serviceAccountName } : {}),
      ...(tokenizerVolume ? { volumes: tokenizerVolume.volumes } : {}),
      containers: [
        {
          name: "runner",
          image: spec.runners.image ?? settings.defaultImage,
          imagePullPolicy: settings.imagePullPolicy,
          args: ["runner"],
          env,
          ...(spec.runners.resources ? { resources: spec.runners.resources } : {}),
          ...(tokenizerVolume ? { volumeMounts: tokenizerVolume.volumeMounts } : {}),
        },
      ],
    },
  };
}
