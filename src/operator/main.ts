import { hostname } from "node:os";
import type { Server } from "node:http";
import type { KubernetesListObject, KubernetesObject, V1Pod } from "@kubernetes/client-node";
import { CoreV1Api, CustomObjectsApi, KubeConfig, makeInformer } from "./kube.ts";
import { GROUP, VERSION, type RolloutJob, type SandboxPool } from "../api/index.ts";
import { logger } from "../base/log.ts";
import type { BackendEnvironment } from "../backends/factory.ts";
import type { DatasetSettings } from "../envs/datasets/index.ts";
import { backendFactory } from "./backends.ts";
import { kubeClient } from "./client.ts";
import { JobDatasets } from "./rolloutjob/dataset.ts";
import { jobReconciler } from "./rolloutjob/reconcile.ts";
import { JOB_LABEL } from "./rolloutjob/desired.ts";
import { runnersApi } from "./runners-api/routes.ts";
import { ActiveJobs } from "./runners-api/registry.ts";
import { Controller } from "./runtime/controller.ts";
import { EventRecorder } from "./runtime/events.ts";
import { createProbeServer, listen } from "./runtime/http.ts";
import { SupervisedInformer, type SourceInformer } from "./runtime/informer.ts";
import { LeaderElector } from "./runtime/leader.ts";
import { ControllerMetrics } from "./runtime/metrics.ts";
import { poolMetricsExporter } from "./sandboxpool/metrics.ts";
import { poolReconciler } from "./sandboxpool/reconcile.ts";
import { PoolRuntimes } from "./sandboxpool/runtimes.ts";
import { FileLeaseStore } from "./sandboxpool/lease-file.ts";
import { realClock } from "../base/clock.ts";

const log = logger("controller");

export interface ControllerOptions {
  kubeConfig?: KubeConfig;
  port: number;
  host?: string;
  dataDir: string;
  /** Where runner pods reach this controller's runners' API; http://<podIP>:<port> when unset. */
  runnerApiURL?: string;
  /** This replica's pod IP (POD_IP): published on the Lease, and where sandboxes clone served repositories. */
  podIP?: string;
  datasets?: DatasetSettings;
  backendEnvironment?: BackendEnvironment;
  /** Labels of this controller's pods (in `leaseNamespace`): each kubernetes pool gets a NetworkPolicy letting only them in. */
  sandboxNetworkPolicyFrom?: Record<string, string>;
  image: string;
  imagePullPolicy: "Always" | "IfNotPresent" | "Never";
  leaseNamespace: string;
  leaseName?: string;
  /** Watch and manage only this namespace; all namespaces when unset. */
  namespace?: string;
  identity?: string;
  /** Called when leadership is lost; the default exits so the pod restarts clean (controller-runtime does the same). */
  onLostLeadership?: () => void;
  resyncMs?: number;
}

export interface RunningController {
  port: number;
  metrics: ControllerMetrics;
  isLeader: () => boolean;
  stop(): Promise<void>;
}

/** On the leader-election Lease: where the leader serves the runners' API, so followers can point runners there. */
const RUNNERS_API_ANNOTATION = "hermes-rollouts.dev/runners-api-url";

const key = (o: KubernetesObject) => `${o.metadata?.namespace ?? "default"}/${o.metadata?.name ?? ""}`;

export async function startController(options: ControllerOptions): Promise<RunningController> {
  const kc = options.kubeConfig ?? loadDefault();
  const client = kubeClient(kc);
  const datasets = new JobDatasets(client, options.dataDir, {
    ...(options.podIP ? { podIP: options.podIP } : {}),
    ...(options.datasets ? { datasets: options.datasets } : {}),
  });
  const metrics = new ControllerMetrics({ defaultMetrics: true });
  const recorder = new EventRecorder(client);
  const custom = kc.makeApiClient(CustomObjectsApi);
  const core = kc.makeApiClient(CoreV1Api);
  const store = new FileLeaseStore(options.dataDir);
  const runtimes = new PoolRuntimes(
    backendFactory(
      client,
      options.dataDir,
      options.backendEnvironment,
      options.sandboxNetworkPolicyFrom ? { namespace: options.leaseNamespace, podLabels: options.sandboxNetworkPolicyFrom } : undefined,
    ),
    store,
  );
  const active = new ActiveJobs();

  // One namespace (the chart's namespaced RBAC mode) or all of them.
  const scope = options.namespace ? `/namespaces/${options.namespace}` : "";
  const listCustom = (plural: string) => () =>
    (options.namespace
      ? custom.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: options.namespace, plural })
      : custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural })) as Promise<KubernetesListObject<KubernetesObject>>;
  const poolSource = makeInformer(kc, `/apis/${GROUP}/${VERSION}${scope}/sandboxpools`, listCustom("sandboxpools"));
  const jobSource = makeInformer(kc, `/apis/${GROUP}/${VERSION}${scope}/rolloutjobs`, listCustom("rolloutjobs"));
  const listPods = () =>
    options.namespace
      ? core.listNamespacedPod({ namespace: options.namespace, labelSelector: JOB_LABEL })
      : core.listPodForAllNamespaces({ labelSelector: JOB_LABEL });
  const podSource = makeInformer<V1Pod>(kc, `/api/v1${scope}/pods`, listPods, JOB_LABEL);

  const poolController: Controller = new Controller({
    name: "sandboxpool",
    metrics,
    reconcile: poolReconciler({
      getPool: (ns, name) => pools.get(name, ns) as SandboxPool | undefined,
      client,
      runtimes,
      recorder,
      clock: realClock,
      enqueue: (k) => poolController.enqueue(k),
      exportMetrics: poolMetricsExporter(metrics),
    }),
  });
  const port = { value: options.port };
  const runnerApiURL = () => options.runnerApiURL ?? `http://${options.podIP ?? "127.0.0.1"}:${port.value}`;
  const jobController: Controller = new Controller({
    name: "rolloutjob",
    metrics,
    reconcile: jobReconciler({
      getJob: (ns, name) => jobs.get(name, ns) as RolloutJob | undefined,
      getPool: (ns, name) => pools.get(name, ns) as SandboxPool | undefined,
      listRunnerPods: (ns, jobName) => pods.list(ns).filter((p) => p.metadata?.labels?.[JOB_LABEL] === jobName),
      client,
      runtimes,
      active,
      recorder,
      loadDataset: (ns, spec) => datasets.load(ns, spec),
      restoredSlotLeases: async (poolKey, jobKey) =>
        ((await store.load(poolKey)) ?? []).filter((r) => r.holder === jobKey).map((r) => r.id),
      enqueue: (k) => jobController.enqueue(k),
      runnerPods: {
        get apiURL() {
          return runnerApiURL();
        },
        defaultImage: options.image,
        imagePullPolicy: options.imagePullPolicy,
      },
      dataDir: options.dataDir,
      clock: realClock,
    }),
  });
  runtimes.onWaiting = (poolKey) => poolController.enqueue(poolKey);

  const enqueueJobsOfPool = (pool: KubernetesObject) => {
    for (const job of jobs.list(pool.metadata?.namespace))
      if ((job as RolloutJob).spec?.poolRef?.name === pool.metadata?.name) jobController.enqueue(key(job));
  };
  const supervise = <T extends KubernetesObject>(resource: string, source: SourceInformer<T>, onChange: (o: T) => void) =>
    new SupervisedInformer<T>({
      resource,
      informer: source,
      onChange,
      resyncMs: options.resyncMs,
      onRestart: () => metrics.informerRestarts.inc({ resource }),
    });
  const pools = supervise("sandboxpools", poolSource, (o) => {
    poolController.enqueue(key(o));
    enqueueJobsOfPool(o);
  });
  const jobs = supervise("rolloutjobs", jobSource, (o) => jobController.enqueue(key(o)));
  const pods = supervise<V1Pod>("pods", podSource, (p) => {
    const job = p.metadata?.labels?.[JOB_LABEL];
    if (job) jobController.enqueue(`${p.metadata?.namespace}/${job}`);
  });

  const identity = options.identity ?? `${hostname()}-${process.pid}`;
  // The elector needs the listening port, so it is made after the server: runners calling in between (a restart)
  // are told to retry, with no leader to point at yet.
  let elector: LeaderElector | undefined;
  const server: Server = createProbeServer({
    registry: metrics.registry,
    healthy: () => true,
    ready: () => pools.synced && jobs.synced && pods.synced,
    routes: [
      runnersApi(
        active,
        (poolKey) => runtimes.get(poolKey),
        metrics,
        () => (!elector || elector.isLeader ? undefined : elector.holderAnnotations[RUNNERS_API_ANNOTATION]),
      ),
    ],
  });
  port.value = await listen(server, options.port, options.host);
  await Promise.all([pools.start(), jobs.start(), pods.start()]);

  const leaderElector = new LeaderElector({
    kubeConfig: kc,
    namespace: options.leaseNamespace,
    name: options.leaseName ?? "hermes-rollouts-controller",
    identity,
    // This replica's own address (the pod IP), not a Service that may land on a follower.
    annotations: { [RUNNERS_API_ANNOTATION]: options.podIP ? `http://${options.podIP}:${port.value}` : runnerApiURL() },
    onStartedLeading: () => {
      metrics.isLeader.set(1);
      poolController.start();
      jobController.start();
      for (const o of pools.list()) poolController.enqueue(key(o));
      for (const o of jobs.list()) jobController.enqueue(key(o));
    },
    onStoppedLeading: () => {
      metrics.isLeader.set(0);
      // Stop reconciling at once: another replica may already be leading.
      void poolController.stop();
      void jobController.stop();
      (options.onLostLeadership ?? (() => process.exit(1)))();
    },
  });
  elector = leaderElector;
  leaderElector.start();
  log.info({ port: port.value, identity }, "controller started");

  return {
    port: port.value,
    metrics,
    isLeader: () => leaderElector.isLeader,
    async stop() {
      await Promise.all([poolController.stop(), jobController.stop()]);
      await leaderElector.stop();
      await Promise.all([pools.stop(), jobs.stop(), pods.stop()]);
      await recorder.flush();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await runtimes.closeAll();
      await datasets.close();
    },
  };
}

function loadDefault(): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromDefault();
  return kc;
}
