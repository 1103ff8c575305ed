/**
 * npm run bench:tokens
 * What a token-in turn costs as a trajectory grows, on the bundled Qwen3 tokenizer and chat template, measured in
 * one run. A trajectory of terminal calls (each result about 400 tokens of listing) grows to 8k and to 32k tokens;
 * at each size the next turn's prompt is built two ways, each repeated:
 *  - incremental (what the token-in client does, nextPrompt): render the template, check it extends the text so
 *    far, encode only the new suffix and append it to the ids kept;
 *  - whole: render the template and encode the whole conversation again.
 * ratio = whole / incremental at that size. p99 per turn: the incremental cost over every turn of the 32k
 * trajectory (its first turn encodes the system prompt and tools whole). Medians of the repeats, after one warm-up
 * trajectory. The last line is one JSON object with the headline figures.
 */
import { bundledTokenizerDirectory, loadChatTokenizer } from "../src/rollout/chat-tokenizer.ts";
import { nextPrompt, type SequenceSoFar } from "../src/rollout/token-client.ts";
import { defaultTools } from "../src/rollout/tools.ts";
import type { ChatMessage } from "../src/rollout/types.ts";

const SIZES = [8_192, 32_768];
const REPEATS = 50;
const round = (value: number, digits = 3): number => Number(value.toFixed(digits));
const percentile = (samples: number[], p: number): number =>
  [...samples].sort((a, b) => a - b)[Math.min(samples.length - 1, Math.floor((p / 100) * samples.length))] ?? NaN;

const tokenizer = loadChatTokenizer(bundledTokenizerDirectory("qwen3"));
const tools = defaultTools().schemas;

/** A terminal result shaped like `ls -la` of a repository: about 400 tokens. */
const listing = (turn: number): string =>
  JSON.stringify({
    output: Array.from(
      { length: 24 },
      (_, i) => `-rw-r--r-- 1 dev dev ${(turn * 131 + i * 977) % 9000} Dec  6 02:${i % 60} src/module_${turn}_${i}.py`,
    ).join("\n"),
    exit_code: 0,
    error: null,
  });
const call = (turn: number): string => {
  const command = `ls -la src/ && sed -n ${turn},${turn + 40}p src/module_${turn}.py`;
  return `<tool_call>\n${JSON.stringify({ name: "terminal", arguments: { command } })}\n</tool_call>`;
};

interface Grown {
  messages: ChatMessage[];
  sofar: SequenceSoFar;
  /** Incremental cost of every turn on the way, in ms. */
  perTurnMs: number[];
}

/** A trajectory grown turn by turn (incrementally, as the client does) until its sequence holds `tokens`. */
function grow(tokens: number): Grown {
  const messages: ChatMessage[] = [
    { role: "system", content: "You are an autonomous software engineer with a Linux shell." },
    { role: "user", content: "The parser drops the last field of a quoted CSV row. Find and fix it." },
  ];
  const perTurnMs: number[] = [];
  let sofar: SequenceSoFar | undefined;
  for (let turn = 0; sofar === undefined || sofar.ids.length < tokens; turn++) {
    const started = performance.now();
    const prompt = nextPrompt(tokenizer, messages, tools, sofar);
    perTurnMs.push(performance.now() - started);
    const sampled = tokenizer.encode(call(turn) + tokenizer.eosToken);
    sofar = { ids: [...prompt.ids, ...sampled], text: prompt.text + tokenizer.decode(sampled), messages: messages.length + 1 };
    messages.push({ role: "assistant", content: call(turn) }, { role: "tool", content: listing(turn) });
  }
  return { messages, sofar: sofar as SequenceSoFar, perTurnMs };
}

function timeEach(work: () => unknown): number {
  const samples: number[] = [];
  for (let i = 0; i < REPEATS; i++) {
    const started = performance.now();
    work();
    samples.push(performance.now() - started);
  }
  return percentile(samples, 50);
}

// Warm the tokenizer, the template and the JIT once, so the first size is not charged for them.
grow(SIZES[0]!);

const results: Record<string, { tokens: number; incrementalMs: number; wholeMs: number; ratio: number }> = {};
let p99PerTurnMs = NaN;
for (const size of SIZES) {
  const grown = grow(size);
  const incremental = nextPrompt(tokenizer, grown.messages, tools, grown.sofar);
  const whole = tokenizer.encode(tokenizer.render(grown.messages, { tools, addGenerationPrompt: true }));
  if (incremental.ids.length !== whole.length) throw new Error("the incremental prompt should be as long as the whole one here");
  const incrementalMs = timeEach(() => nextPrompt(tokenizer, grown.messages, tools, grown.sofar));
  const wholeMs = timeEach(() => tokenizer.encode(tokenizer.render(grown.messages, { tools, addGenerationPrompt: true })));
  const label = `${Math.round(size / 1024)}k`;
  results[label] = {
    tokens: whole.length,
    incrementalMs: round(incrementalMs),
    wholeMs: round(wholeMs),
    ratio: round(wholeMs / incrementalMs, 1),
  };
  console.log(
    `${label}: ${whole.length} tokens, incremental ${round(incrementalMs)} ms, whole ${round(wholeMs)} ms, ratio ${results[label].ratio}x`,
  );
  p99PerTurnMs = round(percentile(grown.perTurnMs, 99));
  console.log(`${label}: ${grown.perTurnMs.length} turns, incremental p99 per turn ${p99PerTurnMs} ms`);
}
console.log(JSON.stringify({ bench: "tokens", repeats: REPEATS, ...results, p99PerTurnMsAt32k: p99PerTurnMs }));
