import { join } from "node:path";
import type { RolloutJobSpec } from "../../api/index.ts";
import { configMapSource, readRows, type DatasetSettings } from "../../envs/datasets/index.ts";
import { rowFilter } from "../../envs/index.ts";
import { resolveDataset, serveLocalRepositories } from "../../envs/resolve.ts";
import { startGitHttpServer, type GitHttpServer } from "../../envs/git-http.ts";
import type { ClusterClient } from "../client.ts";
import type { LoadedDataset } from "./work.ts";

export interface JobDatasetsSettings {
  /** This controller pod's IP (POD_IP): repositories are served on it, for sandboxes in other pods. */
  podIP?: string;
  datasets?: DatasetSettings;
}

/**
 * Opens a job's rows for the controller as a stream, in the job's seeded order, through the envs loaders (the
 * reconciler spools them to disk once), and the environment config to run them with. Repositories given as local
 * paths (the bundled mini-dataset's, a job's `file://` repoBaseURL or mirrors) are served over git HTTP by one
 * server per directory, shared by every job and closed with the controller; in a cluster (a pod IP given) it
 * listens on all addresses and advertises the pod IP, so sandboxes in other pods can clone from it.
 */
export class JobDatasets {
  readonly #client: Pick<ClusterClient, "readConfigMap">;
  readonly #dataDir: string;
  readonly #settings: JobDatasetsSettings;
  readonly #repoServers = new Map<string, Promise<GitHttpServer>>();

  constructor(client: Pick<ClusterClient, "readConfigMap">, dataDir: string, settings: JobDatasetsSettings = {}) {
    this.#client = client;
    this.#dataDir = dataDir;
    this.#settings = settings;
  }

  async load(namespace: string, spec: RolloutJobSpec): Promise<LoadedDataset> {
    const filter = rowFilter(spec.environment.name, spec.environment.config);
    const keep = filter?.keep;
    const filtered = () => filter?.filtered ?? 0;
    const order = {
      ...(spec.dataset.maxItems !== undefined ? { maxItems: spec.dataset.maxItems } : {}),
      ...(spec.dataset.shuffleSeed !== undefined ? { shuffleSeed: spec.dataset.shuffleSeed } : {}),
      ...(keep ? { keep } : {}),
    };
    const configMap = spec.dataset.configMap;
    if (configMap) {
      const data = await this.#client.readConfigMap(namespace, configMap.name);
      if (data === undefined) throw new Error(`ConfigMap ${namespace}/${configMap.name} not found`);
      const source = configMapSource({ metadata: { name: configMap.name, namespace }, data }, configMap.key);
      const environmentConfig = await serveLocalRepositories(spec.environment.config ?? {}, (root) => this.#serve(root));
      return { rows: readRows(source, order), environmentConfig, filtered };
    }
    const resolved = await resolveDataset(spec.dataset, join(this.#dataDir, "job.yaml"), {
      ...this.#settings.datasets,
      serveRepos: (root) => this.#serve(root),
      ...(keep ? { keep } : {}),
      ...(spec.environment.config ? { environmentConfig: spec.environment.config } : {}),
    });
    return { rows: resolved.rows, environmentConfig: resolved.environmentConfig, filtered };
  }

  async close(): Promise<void> {
    const servers = [...this.#repoServers.values()];
    this.#repoServers.clear();
    await Promise.all(servers.map(async (server) => (await server).close()));
  }

  async #serve(root: string): Promise<string> {
    let server = this.#repoServers.get(root);
    if (server === undefined) {
      const podIP = this.#settings.podIP;
      server = startGitHttpServer(root, podIP ? { host: "0.0.0.0", advertiseHost: podIP } : {});
      this.#repoServers.set(root, server);
    }
    return (await server).url;
  }
}
