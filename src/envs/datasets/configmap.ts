/** A ConfigMap key holding JSONL (the value is at most 1 MiB, so it is read whole and shuffled exactly). */
import type { CoreV1Api, V1ConfigMap } from "@kubernetes/client-node";
import { memorySource, parseJsonl } from "./jsonl.ts";
import type { DatasetSource } from "./types.ts";
import { DatasetError, errorMessage } from "../../base/errors.ts";

/** Pure: the rows of one key of a fetched ConfigMap. */
export function configMapSource(configMap: V1ConfigMap, key: string): DatasetSource {
  const where = `configmap:${configMap.metadata?.namespace ?? ""}/${configMap.metadata?.name ?? ""}#${key}`;
  const text =
    configMap.data?.[key] ?? (configMap.binaryData?.[key] ? Buffer.from(configMap.binaryData[key], "base64").toString("utf8") : undefined);
  if (text === undefined) throw new DatasetError(`${where}: no such key`);
  return memorySource(where, parseJsonl(text, where));
}

export async function readConfigMapSource(api: CoreV1Api, namespace: string, name: string, key: string): Promise<DatasetSource> {
  const configMap = await api.readNamespacedConfigMap({ name, namespace }).catch((error: unknown) => {
    throw new DatasetError(`configmap ${namespace}/${name}: ${errorMessage(error)}`, { cause: error });
  });
  return configMapSource(configMap, key);
}
