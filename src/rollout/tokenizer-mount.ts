/**
 * Where runner pods have spec.model.tokenizer.configMap mounted: the operator mounts it (a ConfigMap volume, whose
 * data and binaryData keys are files), so a runner reads it as a directory and needs no API access.
 * A module of its own: the controller needs only this path, not the tokenizer libraries chat-tokenizer.ts loads.
 */
export const TOKENIZER_CONFIGMAP_DIRECTORY = "/etc/hermes-rollouts/tokenizer";
