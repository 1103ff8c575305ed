/**
 * Where leases outlive the process that granted them. The in-memory store is the embedded default; the
 * controller plugs in a Kubernetes-backed one. `load` returns `undefined` when the store knows nothing (a
 * fresh process with a fresh memory store): the pool then blocks the slots of sandboxes older than itself
 * for one lease TTL, so a live holder can re-adopt its slot by renewing.
 */
export interface LeaseRecord {
  id: string;
  holder: string;
  sandboxId: string;
  sandboxName: string;
  slot: number;
  /** Epoch milliseconds. */
  expiresAt: number;
}

export interface LeaseStore {
  load(pool: string): Promise<LeaseRecord[] | undefined>;
  put(pool: string, record: LeaseRecord): Promise<void>;
  remove(pool: string, leaseId: string): Promise<void>;
}

export class InMemoryLeaseStore implements LeaseStore {
  private readonly pools = new Map<string, Map<string, LeaseRecord>>();

  async load(pool: string): Promise<LeaseRecord[] | undefined> {
    const records = this.pools.get(pool);
    return records === undefined ? undefined : [...records.values()];
  }

  async put(pool: string, record: LeaseRecord): Promise<void> {
    this.records(pool).set(record.id, { ...record });
  }

  async remove(pool: string, leaseId: string): Promise<void> {
    this.records(pool).delete(leaseId);
  }

  private records(pool: string): Map<string, LeaseRecord> {
    let records = this.pools.get(pool);
    if (records === undefined) {
      records = new Map();
      this.pools.set(pool, records);
    }
    return records;
  }
}
