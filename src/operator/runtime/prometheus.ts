/**
 * Every value the operator takes from prom-client. The image's build bundles this one module (scripts/build.ts):
 * prom-client is 97 modules with @opentelemetry/api, which cost the controller about 8 MiB loaded one by one.
 */
export { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
