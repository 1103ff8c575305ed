/**
 * The one group driver, shared by `hermes-rollouts run` and the runner pod: `parallel` workers each take an item,
 * run its group, deliver the scored group, and take the next. Where items come from (a dataset stream, the runners'
 * API), where groups go (sinks, the API's scored intake) and how failures are reported are the caller's.
 */
import { runGroup, type GroupOptions } from "./group.ts";
import { itemImage } from "./image.ts";
import type { ScoredDataGroup } from "./scored.ts";

/** One dataset row to run as a group, and its index in the job. */
export interface GroupWork {
  row: unknown;
  index: number;
}

export interface GroupDriverOptions<Work extends GroupWork> {
  /** What every group runs with: environment, slots, model, settings, the trajectory gate and the abort signal. */
  group: GroupOptions<unknown>;
  /** Groups at once. */
  parallel: number;
  /** The next item, or undefined when there is none for this worker (it ends). Rejecting ends the worker and the drive. */
  take: () => Promise<Work | undefined>;
  /** Where a scored group goes; a failure here is the item's failure. */
  deliver: (group: ScoredDataGroup, work: Work) => Promise<void>;
  /** An item that yielded no group: an invalid row, a GroupFailedError, a failed delivery. `itemId` is `#index` before the row parsed. */
  failed: (work: Work, error: unknown, itemId: string) => Promise<void> | void;
  /** An item the abort signal cut short; its worker then ends. */
  interrupted?: (work: Work) => Promise<void>;
  /** Runs while an item is held, until it is delivered, failed or interrupted; returns its end (the runner renews its item lease). */
  hold?: (work: Work) => () => void;
  /** Where the built-in oracle model learns each item's solution. */
  oracleTasks?: { push(task: { id: string; prompt: string; commands: string[] }): unknown };
}

/**
 * Runs until every worker has ended: out of work, or the signal aborted (no new item is taken; groups in flight
 * end, stopped by the same signal). Rejects with the first worker's failure once all have ended, so no group is
 * left running against what the caller closes next (the pool, the model server).
 */
export async function driveGroups<Work extends GroupWork>(options: GroupDriverOptions<Work>): Promise<void> {
  const { env, signal } = options.group;
  const worker = async (): Promise<void> => {
    while (!signal?.aborted) {
      const work = await options.take();
      if (work === undefined) return;
      const release = options.hold?.(work);
      let itemId = `#${work.index}`;
      try {
        const item = env.parseItem(work.row);
        itemId = env.itemId(item);
        const commands = env.oracleCommands(item);
        if (commands) options.oracleTasks?.push({ id: itemId, prompt: env.prompt(item).user, commands });
        const image = itemImage(options.group.imageTemplate, work.row);
        await options.deliver(await runGroup(item, work.index, options.group, image), work);
      } catch (error) {
        if (signal?.aborted) {
          await options.interrupted?.(work);
          return;
        }
        await options.failed(work, error, itemId);
      } finally {
        release?.();
      }
    }
  };
  const ended = await Promise.allSettled(Array.from({ length: Math.max(1, options.parallel) }, worker));
  const crashed = ended.find((result) => result.status === "rejected");
  if (crashed) throw crashed.reason;
}

/**
 * Work from a row stream, numbered from 0 in stream order; workers asking at once are served one at a time.
 * `close` ends the stream early (an interrupted run), as leaving a `for await` would.
 */
/** The first `count` rows, read now, and all the rows again (those first, then the rest as they stream). */
export async function readAhead(rows: AsyncIterable<unknown>, count: number): Promise<{ head: unknown[]; rows: AsyncIterable<unknown> }> {
  const iterator = rows[Symbol.asyncIterator]();
  const head: unknown[] = [];
  let done = false;
  while (head.length < count) {
    const next = await iterator.next();
    if (next.done) {
      done = true;
      break;
    }
    head.push(next.value);
  }
  async function* all(): AsyncGenerator<unknown> {
    yield* head;
    if (done) return;
    for (let next = await iterator.next(); !next.done; next = await iterator.next()) yield next.value;
  }
  return { head, rows: all() };
}

export function streamWork(rows: AsyncIterable<unknown>): { take: () => Promise<GroupWork | undefined>; close: () => Promise<void> } {
  const iterator = rows[Symbol.asyncIterator]();
  let index = 0;
  let queue: Promise<unknown> = Promise.resolve();
  return {
    take: () => {
      const next = queue.then(async (): Promise<GroupWork | undefined> => {
        const row = await iterator.next();
        return row.done ? undefined : { row: row.value, index: index++ };
      });
      queue = next.catch(() => undefined);
      return next;
    },
    close: async () => void (await iterator.return?.()),
  };
}
