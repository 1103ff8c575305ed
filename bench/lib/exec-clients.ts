/**
 * The runners of bench/exec.ts in a process of their own, so that their work does not share the event loop the
 * bench measures (the served runners' API's, as a controller's). argv[2]: JSON {url, token, clients, ms, request}.
 * Each client leases a slot, runs `request` in it through `slots/exec` in a loop for `ms`, and releases it; the one
 * lines printed are "started" once every client holds its slot, then JSON {latencies, errors, seconds}.
 */
import { RunnersApiClient } from "../../src/runner/client.ts";

interface Settings {
  url: string;
  token: string;
  clients: number;
  ms: number;
  request: { command: string; timeoutMs: number };
}

const settings = JSON.parse(process.argv[2] ?? "{}") as Settings;
const api = Array.from(
  { length: settings.clients },
  () => new RunnersApiClient({ url: settings.url, namespace: "bench", job: "leases", token: settings.token }),
);
const leases = await Promise.all(api.map((client) => client.call("slots/acquire", { timeoutMs: 30_000 })));
console.log("started");
const latencies: number[] = [];
let errors = 0;
const started = performance.now();
await Promise.all(
  api.map(async (client, index) => {
    while (performance.now() - started < settings.ms) {
      const begun = performance.now();
      try {
        await client.call("slots/exec", { leaseId: leases[index]!.leaseId, request: settings.request });
        latencies.push(performance.now() - begun);
      } catch {
        errors++;
      }
    }
  }),
);
const seconds = (performance.now() - started) / 1000;
await Promise.all(api.map((client, index) => client.call("slots/release", { leaseId: leases[index]!.leaseId })));
console.log(JSON.stringify({ latencies, errors, seconds }));
