import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { LeaseRecord, LeaseStore } from "../../backends/slots/lease-store.ts";

/**
 * Lease records as one JSON file per pool under the controller's data dir (a PersistentVolume in a cluster),
 * replaced atomically, so a new leader restores them and hands out no slot a live runner holds. A change resolves
 * once a write that includes it is on disk; writes never block the event loop, and the changes that arrive while one
 * write runs share the next (every acquire, renewal and release changes the file: one write each would queue up).
 */
export class FileLeaseStore implements LeaseStore {
  readonly #dir: string;
  readonly #cache = new Map<string, Map<string, LeaseRecord>>();
  readonly #writers = new Map<string, CoalescingWriter>();
  constructor(dataDir: string) {
    this.#dir = join(dataDir, "leases");
  }
  #file(pool: string): string {
    return join(this.#dir, `${pool.replace("/", "_")}.json`);
  }
  async load(pool: string): Promise<LeaseRecord[] | undefined> {
    try {
      const records = JSON.parse(await readFile(this.#file(pool), "utf8")) as LeaseRecord[];
      this.#cache.set(pool, new Map(records.map((r) => [r.id, r])));
      return records;
    } catch {
      return undefined;
    }
  }
  async put(pool: string, record: LeaseRecord): Promise<void> {
    this.#records(pool).set(record.id, { ...record });
    await this.#writer(pool).write();
  }
  async remove(pool: string, leaseId: string): Promise<void> {
    if (this.#records(pool).delete(leaseId)) await this.#writer(pool).write();
  }
  #records(pool: string): Map<string, LeaseRecord> {
    let records = this.#cache.get(pool);
    if (!records) this.#cache.set(pool, (records = new Map()));
    return records;
  }
  #writer(pool: string): CoalescingWriter {
    let writer = this.#writers.get(pool);
    if (writer === undefined) {
      const path = this.#file(pool);
      writer = new CoalescingWriter(async () => {
        await mkdir(this.#dir, { recursive: true });
        // The snapshot is taken as the write starts: it holds every change made before.
        await writeFile(`${path}.tmp`, JSON.stringify([...this.#records(pool).values()]));
        await rename(`${path}.tmp`, path);
      });
      this.#writers.set(pool, writer);
    }
    return writer;
  }
}

/** One write at a time; callers that arrive while one runs share the single write that starts after it. */
class CoalescingWriter {
  readonly #write: () => Promise<void>;
  #running: Promise<void> | undefined;
  #next: Promise<void> | undefined;
  constructor(write: () => Promise<void>) {
    this.#write = write;
  }
  write(): Promise<void> {
    this.#next ??= (async () => {
      await this.#running?.catch(() => undefined);
      this.#next = undefined;
      const running = this.#write();
      this.#running = running;
      try {
        await running;
      } finally {
        if (this.#running === running) this.#running = undefined;
      }
    })();
    return this.#next;
  }
}
