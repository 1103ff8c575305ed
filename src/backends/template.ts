import { createHash } from "node:crypto";
import { parseQuantity, type SandboxPoolSpec } from "../api/index.ts";
import type { SandboxTemplate } from "./types.ts";

/** The sandbox template of a pool: its hash changes when any field that shapes a sandbox does (rollover). */
export function poolTemplate(poolKey: string, spec: SandboxPoolSpec): SandboxTemplate {
  const shape = {
    image: spec.image,
    slots: spec.slotsPerSandbox,
    cpu: parseQuantity(spec.resources.cpu),
    memoryMiB: Math.round(parseQuantity(spec.resources.memory) / 2 ** 20),
    lifetimeSeconds: spec.sandboxLifetimeSeconds,
    idleTimeoutSeconds: spec.idleTimeoutSeconds,
    // Unset it is left out of the hash's JSON, so pools that set none keep their template hash.
    ...(spec.slotWorkdir === undefined ? {} : { workdir: spec.slotWorkdir }),
  };
  const templateHash = createHash("sha256").update(JSON.stringify(shape)).digest("hex").slice(0, 10);
  return { pool: poolKey, ...shape, templateHash };
}
