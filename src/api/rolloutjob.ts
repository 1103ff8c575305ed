import { z } from "zod";
import { conditions, dnsLabel, quantity } from "./common.ts";
import { model } from "./model.ts";
import { has, withRules, type Rule, type TransitionRule } from "./rules.ts";

/** status.completedIndexes never grows past this, so a job with many holes still fits its status (and etcd). */
export const COMPLETED_INDEXES_MAX_LENGTH = 65_536;

const freeForm = z.record(z.string(), z.unknown()).meta({ "x-kubernetes-preserve-unknown-fields": true });

const datasetSources = ["inline", "configMap", "jsonl", "huggingFace", "bundled"] as const;

type DatasetShape = Partial<Record<(typeof datasetSources)[number], unknown>> & { jsonl?: { path?: string; url?: string } };

const jsonlSource = withRules(
  z
    .object({
      path: z.string().min(1).optional().describe("Path of a JSONL file readable by the runners (or by `hermes-rollouts run`)."),
      url: z
        .string()
        .regex(/^https?:\/\//, "must start with http:// or https://")
        .optional()
        .describe("http(s) URL of a JSONL file."),
    })
    .strict()
    .describe("A JSONL file, one item per line."),
  [
    {
      rule: "has(self.path) != has(self.url)",
      message: "set exactly one of jsonl.path and jsonl.url",
      check: (s) => has(s, "path") !== has(s, "url"),
    },
  ],
);

export const datasetRules: Rule<DatasetShape>[] = [
  {
    rule: `[${datasetSources.map((s) => `has(self.${s})`).join(", ")}].filter(x, x).size() == 1`,
    message: `set exactly one dataset source: ${datasetSources.join(", ")}`,
    check: (s) => datasetSources.filter((k) => has(s, k)).length === 1,
  },
];

const dataset = withRules(
  z
    .object({
      inline: z.array(freeForm).max(1000).optional().describe("Items written in the job itself (small datasets and tests)."),
      configMap: z
        .object({
          name: dnsLabel.describe("ConfigMap in the job's namespace."),
          key: z.string().min(1).default("items.jsonl").describe("Key whose value is JSONL."),
        })
        .strict()
        .optional()
        .describe("Items from a ConfigMap key holding JSONL."),
      jsonl: jsonlSource.optional(),
      huggingFace: z
        .object({
          name: z
            .string()
            .regex(/^[\w.-]+\/[\w.-]+$/, "must be owner/name")
            .describe("Hub dataset, e.g. NousResearch/SWE-smith-oracle."),
          split: z.string().min(1).default("train").describe("Split to read."),
          config: z.string().min(1).default("default").describe("Dataset config (subset)."),
          revision: z.string().min(1).optional().describe("Git revision of the dataset; the main branch when unset."),
        })
        .strict()
        .optional()
        .describe("A Hugging Face Hub dataset read from its parquet files."),
      bundled: z.enum(["swe-smith-mini"]).optional().describe("A dataset shipped with hermes-rollouts (offline, for demos and CI)."),
      maxItems: z.int().min(1).optional().describe("Read at most this many items (after shuffling)."),
      shuffleSeed: z.int().min(0).optional().describe("Shuffle items deterministically with this seed; file order when unset."),
    })
    .strict()
    .describe("Where the job's items come from: exactly one source."),
  datasetRules,
);

type LimitsShape = { toolTimeoutSeconds: number; trajectoryTimeoutSeconds: number };

export const limitsRules: Rule<LimitsShape>[] = [
  {
    rule: "self.toolTimeoutSeconds <= self.trajectoryTimeoutSeconds",
    message: "toolTimeoutSeconds must not exceed trajectoryTimeoutSeconds",
    path: ["toolTimeoutSeconds"],
    check: (s) => s.toolTimeoutSeconds <= s.trajectoryTimeoutSeconds,
  },
];

const limits = withRules(
  z
    .object({
      maxTurns: z.int().min(1).max(1000).default(30).describe("Model turns per trajectory."),
      toolTimeoutSeconds: z.int().min(1).max(86400).default(120).describe("Timeout of one tool call (exit code 124 when hit)."),
      trajectoryTimeoutSeconds: z
        .int()
        .min(1)
        .max(86400)
        .default(1800)
        .describe("Wall-clock limit of one trajectory, verification excluded."),
      maxTokenLength: z
        .int()
        .min(256)
        .max(1048576)
        .default(32768)
        .describe("Token budget of one trajectory; the loop stops when it is reached."),
      maxToolOutputBytes: z
        .int()
        .min(1024)
        .max(10485760)
        .default(50000)
        .describe("Tool output kept per call (the tail), as the original terminal tool does."),
    })
    .strict()
    .describe("Per-trajectory limits."),
  limitsRules,
);

const runners = z
  .object({
    replicas: z.int().min(1).max(1000).default(1).describe("Runner pods working on the job at once."),
    trajectoriesPerRunner: z.int().min(1).max(256).default(4).describe("Trajectories one runner runs concurrently."),
    image: z.string().min(1).optional().describe("Runner image; the controller's own image when unset."),
    resources: z
      .object({
        requests: z.record(z.string(), quantity).optional().describe("Resource requests, e.g. cpu: 500m."),
        limits: z.record(z.string(), quantity).optional().describe("Resource limits, e.g. memory: 1Gi."),
      })
      .strict()
      .optional()
      .describe("Resources of each runner container."),
    serviceAccountName: dnsLabel.optional().describe("ServiceAccount of the runner pods; the namespace default when unset."),
  })
  .strict()
  .describe("The runner pods that run the agent loop.");

type ResultsShape = { type: "file" | "atropos"; url?: string };

export const resultsRules: Rule<ResultsShape>[] = [
  {
    rule: "self.type != 'atropos' || has(self.url)",
    message: "results.url is required when results.type is atropos",
    path: ["url"],
    check: (s) => s.type !== "atropos" || has(s, "url"),
  },
];

const results = withRules(
  z
    .object({
      type: z
        .enum(["file", "atropos"])
        .default("file")
        .describe("file: JSONL written by the controller; atropos: posted to a trainer API."),
      path: z
        .string()
        .min(1)
        .optional()
        .describe(
          "For file: where the JSONL goes; <dataDir>/<namespace>/<job>/<uid>/results.jsonl when unset. Each line carries " +
            "the job's uid, so a job re-created with the same path starts afresh.",
        ),
      url: z
        .string()
        .regex(/^https?:\/\//, "must start with http:// or https://")
        .optional()
        .describe("For atropos: the trainer API base URL."),
      dropUniformGroups: z
        .boolean()
        .default(true)
        .describe(
          "For atropos, with groupSize > 1: a group whose scores are all equal is not sent (no signal to compare, as " +
            "atroposlib's ensure_scores_are_not_same). A group with a sequence of the trainer's /info max_token_len tokens " +
            "or more (limits.maxTokenLength when the trainer gives none) is never sent. Both stay in the JSONL.",
        ),
      holdBackTokenRestarts: z
        .boolean()
        .default(true)
        .describe(
          "For atropos: a group in which any trajectory's token sequence restarted (a turn's prompt was not a token-level " +
            "continuation of the turns before, so only the last part is trainable) is not sent; it stays in the JSONL and " +
            "is counted in status.progress.heldBack and the run summary.",
        ),
    })
    .strict()
    .describe("Where full scored groups go (status keeps aggregates only)."),
  resultsRules,
);

/** Text with `{{field}}` placeholders (spaces inside the braces allowed); see src/rollout/image.ts. */
const IMAGE_TEMPLATE = /^(?:[^{}]|\{\{\s*[A-Za-z_][A-Za-z0-9_]*\s*\}\})+$/;

type JobSpecShape = { poolRef: { name: string }; environment: { name: string }; groupSize: number };

/** Immutable after creation; kept to scalar fields so CEL's cost estimate stays small on modern apiservers. */
export const rolloutJobTransitionRules: TransitionRule<JobSpecShape>[] = [
  {
    rule: "self.poolRef.name == oldSelf.poolRef.name",
    message: "poolRef is immutable",
    check: (s, o) => s.poolRef.name === o.poolRef.name,
  },
  {
    rule: "self.environment.name == oldSelf.environment.name",
    message: "environment.name is immutable",
    check: (s, o) => s.environment.name === o.environment.name,
  },
  { rule: "self.groupSize == oldSelf.groupSize", message: "groupSize is immutable", check: (s, o) => s.groupSize === o.groupSize },
];

export const rolloutJobSpec = withRules(
  z
    .object({
      poolRef: z
        .object({ name: dnsLabel.describe("Name of a SandboxPool in the job's namespace.") })
        .strict()
        .describe("The SandboxPool whose slots the trajectories lease. Immutable."),
      environment: z
        .object({
          name: z.enum(["swe-smith-oracle", "shell-task"]).describe("Environment that sets up, prompts and scores each item."),
          config: freeForm
            .optional()
            .describe(
              "Environment settings. swe-smith-oracle: repoBaseURL, repoMirrors (owner/name to URL; file:// sources are served " +
                "to the sandboxes), installCommand (once per sandbox and commit; a failure is infrastructure, retried), " +
                "testProfile (pytest, django or unittest; a row's install_config.log_parser overrides), testCommand, " +
                "testChunkSize, testTimeoutSeconds, installTimeoutSeconds, setupTimeoutSeconds, promptMode, pythonOnly " +
                "(default true: rows whose tests no profile can run are left out).",
            ),
          image: z
            .string()
            .regex(IMAGE_TEMPLATE, "image: only text and {{field}} placeholders (a row's top-level field names)")
            .optional()
            .describe(
              "The sandbox image of each item, a template over the row's top-level fields, e.g. " +
                "`registry.example/swesmith.x86_64.{{repo}}:latest`; a field the row lacks fails that item as invalid. " +
                "Default: the row's image_name when it has one, else the pool's image. Carried to every slot acquire of " +
                "the item: its slots are in a sandbox of that image, and see it as their root (local: oci:, oci-archive: " +
                "and docker-archive: references; modal: with the pool's slotWorkdir; see docs/images.md).",
            ),
        })
        .strict()
        .describe("How items are turned into tasks and scored. Its name is immutable."),
      dataset,
      model,
      groupSize: z.int().min(1).max(256).default(4).describe("Trajectories per item; one scored group holds them all. Immutable."),
      limits: limits.default({
        maxTurns: 30,
        toolTimeoutSeconds: 120,
        trajectoryTimeoutSeconds: 1800,
        maxTokenLength: 32768,
        maxToolOutputBytes: 50000,
      }),
      runners: runners.default({ replicas: 1, trajectoriesPerRunner: 4 }),
      results: results.default({ type: "file", dropUniformGroups: true, holdBackTokenRestarts: true }),
      backoffLimit: z
        .int()
        .min(0)
        .max(100)
        .default(3)
        .describe("Attempts per item after infrastructure failures (dead sandbox, endpoint down) before it counts as failed."),
      suspend: z.boolean().default(false).describe("true stops the runners; false resumes without losing finished work."),
      ttlSecondsAfterFinished: z.int().min(0).optional().describe("Delete the job this long after it completes or fails; kept when unset."),
    })
    .strict()
    .describe("Desired state of a rollout job."),
  [],
  rolloutJobTransitionRules,
);

export const jobPhase = z.enum(["Pending", "Running", "Suspended", "Complete", "Failed"]);

export const rolloutJobStatus = z
  .object({
    observedGeneration: z.int().min(0).optional().describe("The .metadata.generation this status reflects."),
    conditions: conditions.optional(),
    phase: jobPhase.optional().describe("Summary of the conditions for printing: Pending, Running, Suspended, Complete or Failed."),
    startTime: z.string().optional().describe("When the job first started running (RFC 3339)."),
    completionTime: z.string().optional().describe("When the job completed or failed (RFC 3339)."),
    progress: z
      .object({
        items: z.int().min(0).default(0).describe("Items in the dataset (after maxItems)."),
        groups: z.int().min(0).default(0).describe("Scored groups stored (one per finished item)."),
        scored: z.int().min(0).default(0).describe("Scored trajectories."),
        failed: z.int().min(0).default(0).describe("Items that failed after backoffLimit attempts."),
        retried: z.int().min(0).default(0).describe("Attempts retried after infrastructure failures."),
        running: z.int().min(0).default(0).describe("Trajectories running now."),
        heldBack: z
          .int()
          .min(0)
          .default(0)
          .describe("Groups stored but held back from the trainer for token restarts (results.holdBackTokenRestarts)."),
        filtered: z
          .int()
          .min(0)
          .default(0)
          .describe("Dataset rows the environment left out as ones it cannot run (e.g. swe-smith-oracle's pythonOnly); not in items."),
      })
      .strict()
      .optional()
      .describe("Progress counts."),
    progressSummary: z.string().max(64).optional().describe("Finished items out of all items, e.g. 12/50, for printing."),
    scoreMean: z.number().optional().describe("Mean score over scored trajectories."),
    passRate: z.number().min(0).max(1).optional().describe("Fraction of scored trajectories with score 1.0."),
    completedIndexes: z
      .string()
      .max(COMPLETED_INDEXES_MAX_LENGTH)
      .optional()
      .describe(
        "Finished item indexes in compact ranges, e.g. 0-99,105. Bounded whatever the job size: past 64 KiB, the first " +
          "ranges then ,... (the results file has every item).",
      ),
    resultsLocation: z.string().optional().describe("Where the full scored groups are (a file path or a trainer URL)."),
    runners: z
      .object({
        active: z.int().min(0).default(0).describe("Runner pods running."),
        succeeded: z.int().min(0).default(0).describe("Runner pods that exited cleanly."),
        failed: z.int().min(0).default(0).describe("Runner pods that failed."),
      })
      .strict()
      .optional()
      .describe("Runner pod counts."),
  })
  .strict()
  .describe("Observed state of the job: aggregates only, never one entry per item.");

export type RolloutJobSpec = z.infer<typeof rolloutJobSpec>;
export type RolloutJobSpecInput = z.input<typeof rolloutJobSpec>;
export type RolloutJobStatus = z.infer<typeof rolloutJobStatus>;
export type JobPhase = z.infer<typeof jobPhase>;
