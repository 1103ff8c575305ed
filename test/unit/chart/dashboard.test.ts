import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { ControllerMetrics } from "../../../src/operator/runtime/metrics.ts";

const dashboard = JSON.parse(readFileSync("deploy/helm/hermes-rollouts/dashboards/hermes-rollouts.json", "utf8")) as {
  panels: { title: string; targets: { expr: string }[] }[];
};

test("every metric the Grafana dashboard queries is one the controller exports", async () => {
  const exported = new Set((await new ControllerMetrics({ defaultMetrics: true }).registry.getMetricsAsJSON()).map((m) => m.name));
  const queried = new Set(
    dashboard.panels.flatMap((p) =>
      p.targets.flatMap((t) =>
        [...t.expr.matchAll(/\b((?:hermes|controller_runtime|workqueue|nodejs|process)_[a-z0-9_]+?)(?:_bucket|_sum|_count)?\b/g)].map(
          (m) => m[1]!,
        ),
      ),
    ),
  );
  assert.ok(queried.size >= 8);
  for (const name of queried) assert.ok(exported.has(name), `dashboard queries ${name}, which the controller does not export`);
});

test("the dashboard shows the controller's event-loop delay", () => {
  assert.ok(dashboard.panels.some((p) => p.targets.some((t) => t.expr.includes("nodejs_eventloop_lag_p99_seconds"))));
});
