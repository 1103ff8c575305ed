/** A sandbox with a free slot for the image asked for, as placement sees it. */
export interface PlacementCandidate {
  name: string;
  /** drainRank: 0 for a current sandbox; stale and expiring ones are used only when nothing better is free. */
  rank: number;
  free: number;
  /** Leases the acquirer's group (placement key) already holds on it. */
  groupLeases: number;
}

/**
 * Which sandbox a new lease goes to. The lowest drain rank first, so old sandboxes drain. Then, for a lease of a
 * group (a GRPO group: G trajectories of one item), the sandbox holding most of that group's leases, else the one
 * with the most free slots, so the rest of the group fits beside it; without a group, the one with the fewest free
 * slots, which keeps whole sandboxes free for groups. Ties: the first candidate.
 */
export function chooseSandbox(candidates: readonly PlacementCandidate[], grouped: boolean): string | undefined {
  let best: PlacementCandidate | undefined;
  const better = (a: PlacementCandidate, b: PlacementCandidate): boolean => {
    if (a.rank !== b.rank) return a.rank < b.rank;
    if (!grouped) return a.free < b.free;
    if (a.groupLeases !== b.groupLeases) return a.groupLeases > b.groupLeases;
    return a.free > b.free;
  };
  for (const candidate of candidates) if (candidate.free > 0 && (best === undefined || better(candidate, best))) best = candidate;
  return best?.name;
}
