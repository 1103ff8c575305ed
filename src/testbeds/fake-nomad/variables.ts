/**
 * Nomad Variables in the fake, written from github.com/hashicorp/nomad at aa026cc: the `/v1/var/<path>` endpoint of
 * command/agent/variable_endpoint.go (PUT answers the variable, DELETE 204 even for a missing one, GET 404
 * "variable not found"), the rules of nomad/structs/variables.go (VariableDecrypted.Validate, ValidatePath: the
 * path pattern, the reserved `nomad/` tree, 64 KiB of items) and api/variables.go's JSON shape. Templates: the
 * one form `{{ with nomadVar "<path>" }}...{{ .<item> }}...{{ end }}` that client/allocrunner/taskrunner/template
 * renders through consul-template, reading the job's own `nomad/jobs/<job ID>` (which acl/acl.go lets a task's
 * workload identity read; the fake has no per-path ACL, so any path renders); `/v1/vars` lists metadata by
 * prefix. Locks and CAS are left out (docs/nomad-fake.md).
 */
import { NomadHttpError } from "./jobs.ts";
import type { FakeNomadState, Json, VariableRecord } from "./state.ts";

const VALID_PATH = /^[a-zA-Z0-9\-_~/]{1,128}$/;
const MAX_VARIABLE_SIZE = 65536;

/** nomad/structs/variables.go ValidatePath. */
function pathError(path: string): string | undefined {
  if (!VALID_PATH.test(path)) return `invalid path "${path}"`;
  const parts = path.split("/");
  if (parts[0] !== "nomad") return undefined;
  if (parts.length === 1)
    return (
      `"nomad" is a reserved top-level directory path, but you may write variables to ` +
      `"nomad/jobs", "nomad/job-templates", "nomad/sentinel", or below`
    );
  if (parts[1] === "jobs" || parts[1] === "sentinel") return undefined;
  if (parts[1] === "job-templates" && parts.length === 3) return undefined;
  if (parts[1] === "job-templates")
    return (
      `"nomad/job-templates" is a reserved directory path, but you may write variables at the level below it, ` +
      `for example, "nomad/job-templates/template-name"`
    );
  return `only paths at "nomad/jobs" or "nomad/job-templates" and below are valid paths under the top-level "nomad" directory`;
}

/** `PUT /v1/var/<path>`: creates or replaces the variable; CreateIndex and CreateTime survive an update. */
export function putVariable(state: FakeNomadState, path: string, body: Json, requestNamespace: string, query: URLSearchParams): Json {
  if (query.has("cas") || query.has("lock-acquire") || query.has("lock-release") || query.has("lock-renew"))
    throw new NomadHttpError(400, "the fake Nomad does not implement variable CAS or locks");
  const items = body.Items;
  if (typeof items !== "object" || items === null || Object.keys(items).length === 0)
    throw new NomadHttpError(400, "variable missing required Items object");
  const namespace = typeof body.Namespace === "string" && body.Namespace !== "" ? body.Namespace : requestNamespace;
  if (namespace === "*") throw new NomadHttpError(400, `can not target wildcard ("*")namespace`);
  const entries = Object.entries(items as Record<string, unknown>);
  if (entries.some(([, value]) => typeof value !== "string"))
    throw new NomadHttpError(400, "json: cannot unmarshal into map[string]string");
  if (entries.reduce((size, [key, value]) => size + key.length + String(value).length, 0) > MAX_VARIABLE_SIZE)
    throw new NomadHttpError(400, "variables are limited to 64KiB in total size");
  const invalid = pathError(path);
  if (invalid !== undefined) throw new NomadHttpError(400, invalid);
  const key = state.jobKey(namespace, path);
  const previous = state.variables.get(key);
  const index = state.bump();
  const now = Date.now() * 1e6;
  const record: VariableRecord = {
    Namespace: namespace,
    Path: path,
    Items: Object.fromEntries(entries) as Record<string, string>,
    CreateIndex: previous?.CreateIndex ?? index,
    CreateTime: previous?.CreateTime ?? now,
    ModifyIndex: index,
    ModifyTime: now,
  };
  state.variables.set(key, record);
  return { ...record };
}

export function readVariable(state: FakeNomadState, namespace: string, path: string): Json {
  const record = state.variables.get(state.jobKey(namespace, path));
  if (record === undefined) throw new NomadHttpError(404, "variable not found");
  return { ...record };
}

/** `GET /v1/vars?prefix=`: the metadata (no items) of the namespace's variables under a path prefix, by path. */
export function listVariables(state: FakeNomadState, namespace: string, prefix: string): Json[] {
  return [...state.variables.values()]
    .filter((v) => (namespace === "*" || v.Namespace === namespace) && v.Path.startsWith(prefix))
    .sort((a, b) => a.Path.localeCompare(b.Path))
    .map(({ Items: _items, ...metadata }) => metadata);
}

/** `DELETE /v1/var/<path>`: no error when there is nothing to delete (state_store_variables.go svDeleteTxn). */
export function deleteVariable(state: FakeNomadState, namespace: string, path: string): void {
  if (state.variables.delete(state.jobKey(namespace, path))) state.bump();
}

const WITH_NOMAD_VAR = /\{\{-?\s*with\s+nomadVar\s+"([^"]+)"\s*-?\}\}([\s\S]*?)\{\{-?\s*end\s*-?\}\}/g;
const ITEM = /\{\{-?\s*\.([A-Za-z_][A-Za-z0-9_]*)\s*-?\}\}/g;

/**
 * Renders a template of the one form above in the job's namespace, as consul-template would: a missing variable
 * renders the `with` block as nothing, a missing item as `<no value>` (text/template's zero value for a map).
 * Any other action is an error, so a job the fake cannot render fails loudly rather than starting with a blank file.
 */
export function renderTemplate(state: FakeNomadState, namespace: string, text: string): string {
  const rendered = text.replace(WITH_NOMAD_VAR, (_whole, path: string, body: string) => {
    const items = state.variables.get(state.jobKey(namespace, path))?.Items;
    return items === undefined ? "" : body.replace(ITEM, (_item, name: string) => items[name] ?? "<no value>");
  });
  if (rendered.includes("{{")) throw new Error(`the fake Nomad renders only {{ with nomadVar "<path>" }}...{{ end }}: ${text}`);
  return rendered;
}
