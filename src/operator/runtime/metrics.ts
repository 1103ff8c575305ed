import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "./prometheus.ts";

/**
 * The operator's Prometheus metrics. Reconcile and queue metrics keep controller-runtime's names so existing
 * dashboards work; domain metrics are prefixed `hermes_`. Label values come from fixed sets (controller names,
 * result kinds, error kinds), never from object names with unbounded cardinality except pool/job keys.
 */
export class ControllerMetrics {
  readonly registry = new Registry();
  readonly reconcileTotal = new Counter({
    name: "controller_runtime_reconcile_total",
    help: "Reconciles by controller and result (success, error, requeue_after).",
    labelNames: ["controller", "result"] as const,
    registers: [this.registry],
  });
  readonly reconcileErrors = new Counter({
    name: "controller_runtime_reconcile_errors_total",
    help: "Reconciles that returned an error.",
    labelNames: ["controller"] as const,
    registers: [this.registry],
  });
  readonly reconcileSeconds = new Histogram({
    name: "controller_runtime_reconcile_time_seconds",
    help: "Duration of one reconcile.",
    labelNames: ["controller"] as const,
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30],
    registers: [this.registry],
  });
  readonly queueDepth = new Gauge({
    name: "workqueue_depth",
    help: "Keys waiting in the work queue.",
    labelNames: ["name"] as const,
    registers: [this.registry],
  });
  readonly informerRestarts = new Counter({
    name: "hermes_informer_restarts_total",
    help: "Watches restarted by the supervisor after an error.",
    labelNames: ["resource"] as const,
    registers: [this.registry],
  });
  readonly isLeader = new Gauge({
    name: "hermes_leader",
    help: "1 while this replica holds the leader Lease.",
    registers: [this.registry],
  });
  readonly sandboxes = new Gauge({
    name: "hermes_sandboxes",
    help: "Sandboxes by pool, phase and image (a pool's 10 largest images; the rest as image=other).",
    labelNames: ["pool", "phase", "image"] as const,
    registers: [this.registry],
  });
  readonly slots = new Gauge({
    name: "hermes_slots",
    help: "Slots by pool and state (leased, free, quarantined).",
    labelNames: ["pool", "state"] as const,
    registers: [this.registry],
  });
  readonly acquireSeconds = new Histogram({
    name: "hermes_slot_acquire_seconds",
    help: "Time from a runner's acquire request to a leased slot.",
    labelNames: ["pool"] as const,
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120],
    registers: [this.registry],
  });
  readonly trajectories = new Counter({
    name: "hermes_trajectories_total",
    help: "Scored trajectories by job.",
    labelNames: ["job"] as const,
    registers: [this.registry],
  });
  readonly passRate = new Gauge({
    name: "hermes_job_pass_rate",
    help: "Pass rate of a job's scored trajectories.",
    labelNames: ["job"] as const,
    registers: [this.registry],
  });
  readonly errors = new Counter({
    name: "hermes_errors_total",
    help: "Errors by kind (backend, infra, validation, api).",
    labelNames: ["kind"] as const,
    registers: [this.registry],
  });

  constructor(options: { defaultMetrics?: boolean } = {}) {
    if (options.defaultMetrics) collectDefaultMetrics({ register: this.registry });
  }
}
