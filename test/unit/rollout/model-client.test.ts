import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, test } from "node:test";
import { createModelClient } from "../../../src/rollout/model-client.ts";
import { InfrastructureError, ModelRequestError } from "../../../src/base/errors.ts";

/** An endpoint that answers every request with the status named by the model field. */
let server: Server;
let baseURL: string;
before(async () => {
  server = createServer((request, response) => {
    let body = "";
    request.on("data", (chunk) => (body += chunk));
    request.on("end", () => {
      const status = Number((JSON.parse(body) as { model: string }).model);
      response.writeHead(status, { "content-type": "application/json" });
      response.end(JSON.stringify({ error: { message: `status ${status}`, type: "error" } }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  baseURL = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
});
after(() => server.close());

const complete = (status: number) =>
  createModelClient({
    baseURL,
    model: String(status),
    toolCallFormat: "native",
    temperature: 1,
    topP: 1,
    maxTokens: 10,
    logprobs: false,
    server: "openai",
  }).complete({
    messages: [{ role: "user", content: "hi" }],
    maxTokens: 10,
  });

test("an endpoint refusing the job (bad key, no access, unknown model) is infrastructure, never an agent failure scored 0", async () => {
  for (const status of [401, 403, 404]) {
    await assert.rejects(
      complete(status),
      (error: unknown) => error instanceof InfrastructureError && error.source === "model",
      String(status),
    );
  }
});

test("a request the endpoint rejects for its content (e.g. context too long) ends the trajectory as a model error", async () => {
  await assert.rejects(complete(400), ModelRequestError);
  await assert.rejects(complete(422), ModelRequestError);
});
