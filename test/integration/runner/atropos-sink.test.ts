import assert from "node:assert/strict";
import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import { test } from "node:test";
import { gunzipSync } from "node:zlib";
import { scoredGroup } from "../../support/scored-group.ts";
import { AtroposSink } from "../../../src/rollout/sinks.ts";

interface Received {
  method: string;
  path: string;
  gzip: boolean;
  body: unknown;
}

async function body(request: IncomingMessage): Promise<{ gzip: boolean; value: unknown }> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  const raw = Buffer.concat(chunks);
  const gzip = request.headers["content-encoding"] === "gzip";
  const text = (gzip ? gunzipSync(raw) : raw).toString("utf8");
  return { gzip, value: text === "" ? undefined : JSON.parse(text) };
}

/**
 * A trainer API in the shape of atroposlib/api/server.py: waits once before accepting the env, fails once with 503.
 * `/info` answers `{batch_size, max_token_len}`, -1 for what the trainer has not set.
 */
async function fakeTrainer(info: { batch_size: number; max_token_len: number } = { batch_size: 8, max_token_len: 4096 }) {
  const received: Received[] = [];
  let registerCalls = 0;
  let scoredCalls = 0;
  const server = createServer((request, response) => {
    void body(request).then(({ gzip, value }) => {
      received.push({ method: request.method ?? "", path: request.url ?? "", gzip, body: value });
      const reply = (status: number, payload: unknown) =>
        response.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(payload));
      if (request.url === "/register-env") {
        registerCalls++;
        return registerCalls === 1
          ? reply(200, { status: "wait for trainer to start" })
          : reply(200, {
              status: "success",
              env_id: 7,
              wandb_name: "mini",
              starting_step: 0,
              checkpoint_dir: "/tmp/c",
              checkpoint_interval: 10,
              num_steps: 100,
            });
      }
      if (request.url === "/info") return reply(200, info);
      if (request.url === "/scored_data") return ++scoredCalls === 1 ? reply(503, { detail: "busy" }) : reply(200, { status: "received" });
      reply(404, {});
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { url, received, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

/** Item 1's group of two 5-token sequences (3 prompt, 2 completion) with long messages; no tokens without `withTokens`. */
function group(withTokens: boolean, scores: [number, number] = [1, 0]) {
  const tokens = withTokens ? { prompt: [1, 2, 3], completion: [4, 5], logprobs: [-0.1, -0.2] } : null;
  return scoredGroup(1, scores, { content: "x".repeat(2000), tokens });
}

test("registers (waiting for the trainer), reads /info, posts gzipped scored data with env_id, retries a 503", async () => {
  const trainer = await fakeTrainer();
  try {
    const sink = new AtroposSink({ url: trainer.url, name: "swe-smith-mini", groupSize: 2, maxTokenLength: 4096, retryDelayMs: 10 });
    await sink.open();
    assert.equal(sink.registration?.env_id, 7);
    await sink.write(group(true));
    await sink.close();
    const paths = trainer.received.map((r) => `${r.method} ${r.path}`);
    assert.deepEqual(paths, ["POST /register-env", "POST /register-env", "GET /info", "POST /scored_data", "POST /scored_data"]);
    assert.deepEqual(trainer.received[0]?.body, {
      max_token_length: 4096,
      desired_name: "swe-smith-mini",
      weight: 1,
      group_size: 2,
      min_batch_allocation: null,
    });
    const posted = trainer.received[4]!;
    assert.equal(posted.gzip, true);
    const data = posted.body as Record<string, unknown>;
    assert.equal(data.env_id, 7);
    assert.deepEqual(data.tokens, [
      [1, 2, 3, 4, 5],
      [1, 2, 3, 4, 5],
    ]);
    assert.deepEqual(data.masks, [
      [-100, -100, -100, 4, 5],
      [-100, -100, -100, 4, 5],
    ]);
    assert.deepEqual(data.scores, [1, 0]);
    assert.deepEqual(data.inference_logprobs, [
      [1, 1, 1, -0.1, -0.2],
      [1, 1, 1, -0.1, -0.2],
    ]);
    assert.equal((data.messages as unknown[][]).length, 2);
    assert.equal("metadata" in data, false);
  } finally {
    await trainer.close();
  }
});

test("a group without endpoint tokens is refused, not sent with invented tokens", async () => {
  const trainer = await fakeTrainer();
  try {
    const sink = new AtroposSink({ url: trainer.url, name: "x", groupSize: 2, maxTokenLength: 4096, retryDelayMs: 10 });
    await sink.open();
    await assert.rejects(sink.write(group(false)), /no token ids/);
    assert.equal(trainer.received.filter((r) => r.path === "/scored_data").length, 0);
  } finally {
    await trainer.close();
  }
});

test("groupSize above the trainer's batch_size is refused at registration", async () => {
  const trainer = await fakeTrainer();
  try {
    const sink = new AtroposSink({ url: trainer.url, name: "x", groupSize: 16, maxTokenLength: 4096, retryDelayMs: 10 });
    await assert.rejects(sink.open(), /exceeds the trainer's batch_size 8/);
  } finally {
    await trainer.close();
  }
});

test("groups the trainer would not take are kept back, as atroposlib's serve loop: equal scores", async () => {
  const trainer = await fakeTrainer();
  try {
    const sink = new AtroposSink({
      url: trainer.url,
      name: "x",
      groupSize: 2,
      maxTokenLength: 4096,
      dropUniformGroups: true,
      retryDelayMs: 1,
    });
    await sink.open();
    await sink.write(group(true, [1, 1]));
    await sink.write(group(true, [0, 0]));
    assert.equal(trainer.received.filter((r) => r.path === "/scored_data").length, 0);
    assert.equal(sink.skipped, 2);
    const keepAll = new AtroposSink({
      url: trainer.url,
      name: "z",
      groupSize: 2,
      maxTokenLength: 4096,
      dropUniformGroups: false,
      retryDelayMs: 1,
    });
    await keepAll.open();
    await keepAll.write(group(true, [1, 1]));
    assert.equal(keepAll.skipped, 0);
    assert.ok(
      trainer.received.some((r) => r.path === "/scored_data"),
      "sent when the job keeps uniform groups",
    );
  } finally {
    await trainer.close();
  }
});

test("a group of one trajectory is never uniform: with groupSize 1 every group is sent", async () => {
  const { atroposSkipReason } = await import("../../../src/rollout/sinks.ts");
  const rules = { maxTokenLength: 100, dropUniformGroups: true, holdBackTokenRestarts: true };
  const one = group(true, [1, 0]);
  assert.equal(atroposSkipReason({ ...one, tokens: [[1, 2]], scores: [1] }, rules), undefined);
  assert.match(atroposSkipReason({ ...one, tokens: [[1, 2], [3]], scores: [0.5, 0.5] }, rules) ?? "", /every score is 0.5/);
  assert.equal(
    atroposSkipReason({ ...one, tokens: [[1, 2], [3]], scores: [0.5, 0.5] }, { ...rules, maxTokenLength: 0, dropUniformGroups: false }),
    undefined,
    "maxTokenLength 0 disables the length rule",
  );
});

test("the trainer's /info max_token_len governs the over-length rule; the job's maxTokenLength only when it gives none", async () => {
  // 5 tokens per sequence in group(true).
  const cases = [
    { info: { batch_size: 8, max_token_len: 5 }, job: 4096, sent: false },
    { info: { batch_size: 8, max_token_len: 4096 }, job: 5, sent: true },
    { info: { batch_size: -1, max_token_len: -1 }, job: 5, sent: false },
    { info: { batch_size: -1, max_token_len: -1 }, job: 4096, sent: true },
  ];
  for (const { info, job, sent } of cases) {
    const trainer = await fakeTrainer(info);
    try {
      const sink = new AtroposSink({ url: trainer.url, name: "x", groupSize: 2, maxTokenLength: job, retryDelayMs: 1 });
      await sink.open();
      await sink.write(group(true));
      assert.equal(
        trainer.received.some((r) => r.path === "/scored_data"),
        sent,
        JSON.stringify({ info, job }),
      );
      assert.equal(sink.skipped, sent ? 0 : 1);
    } finally {
      await trainer.close();
    }
  }
});

test("a group with a token restart is held back from the trainer when asked, and sent when not", async () => {
  const restarted = group(true);
  restarted.metadata.trajectories[1]!.token_restarts = 1;
  for (const holdBackTokenRestarts of [true, false]) {
    const trainer = await fakeTrainer();
    try {
      const sink = new AtroposSink({
        url: trainer.url,
        name: "x",
        groupSize: 2,
        maxTokenLength: 4096,
        holdBackTokenRestarts,
        retryDelayMs: 1,
      });
      await sink.open();
      await sink.write(restarted);
      assert.equal(sink.skipped, holdBackTokenRestarts ? 1 : 0);
      assert.equal(
        trainer.received.some((r) => r.path === "/scored_data"),
        !holdBackTokenRestarts,
      );
    } finally {
      await trainer.close();
    }
  }
});
