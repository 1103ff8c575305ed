import { createHash } from "node:crypto";
import { parseQuantity, type SandboxPoolSpec } from "../api/index.ts";
import type { SandboxTemplate } from "./types.ts";

type TemplateShape = Pick<SandboxTemplate, "image" | "slots" | "cpu" | "memoryMiB" | "lifetimeSeconds" | "idleTimeoutSeconds" | "workdir">;

const shapeHash = (shape: TemplateShape): string => {
  const { image, slots, cpu, memoryMiB, lifetimeSeconds, idleTimeoutSeconds, workdir } = shape;
  // An unset workdir is left out of the JSON, so pools that set none keep their template hash.
  const ordered = { image, slots, cpu, memoryMiB, lifetimeSeconds, idleTimeoutSeconds, ...(workdir === undefined ? {} : { workdir }) };
  return createHash("sha256").update(JSON.stringify(ordered)).digest("hex").slice(0, 10);
};

/** The sandbox template of a pool: its hash changes when any field that shapes a sandbox does (rollover). */
export function poolTemplate(poolKey: string, spec: SandboxPoolSpec): SandboxTemplate {
  const shape = {
    image: spec.image,
    slots: spec.slotsPerSandbox,
    cpu: parseQuantity(spec.resources.cpu),
    memoryMiB: Math.round(parseQuantity(spec.resources.memory) / 2 ** 20),
    lifetimeSeconds: spec.sandboxLifetimeSeconds,
    idleTimeoutSeconds: spec.idleTimeoutSeconds,
    ...(spec.slotWorkdir === undefined ? {} : { workdir: spec.slotWorkdir }),
  };
  return { pool: poolKey, ...shape, templateHash: shapeHash(shape) };
}

/**
 * The pool's template for sandboxes of another image (an item's spec.environment.image): the same shape, and a
 * hash of that shape with the image, so a pool change rolls every image's sandboxes over and two images never share one.
 */
export function templateForImage(template: SandboxTemplate, image: string): SandboxTemplate {
  if (image === template.image) return template;
  const withImage = { ...template, image };
  return { ...withImage, templateHash: shapeHash(withImage) };
}
