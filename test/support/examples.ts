import { readdirSync, readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";

const examplesDir = new URL("../../examples/", import.meta.url);

/** Every Kubernetes object in examples/*.yaml, with the file it came from. */
export function exampleObjects(): { file: string; object: { kind: string; metadata: { name: string }; spec: unknown } }[] {
  return readdirSync(examplesDir)
    .filter((f) => f.endsWith(".yaml"))
    .sort()
    .flatMap((file) =>
      parseAllDocuments(readFileSync(new URL(file, examplesDir), "utf8"))
        .map((doc) => doc.toJS())
        .filter((object) => object !== null)
        .map((object) => ({ file, object })),
    );
}
