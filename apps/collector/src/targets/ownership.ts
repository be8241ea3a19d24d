import { createHash } from 'node:crypto';

/**
 * Rendezvous (highest random weight) hashing: each target goes to the replica with the highest
 * hash of (target, replica). Every replica computes the same answer alone, no two replicas own a
 * target, and adding or removing a replica moves only the targets it gains or loses.
 */
export function ownerOf(target: string, replicas: number): number {
  let best = 0;
  let bestScore = -1n;
  for (let replica = 0; replica < replicas; replica++) {
    const score = createHash('sha256').update(`${replica}\n${target}`).digest().readBigUInt64BE(0);
    if (score > bestScore) {
      bestScore = score;
      best = replica;
    }
  }
  return best;
}

/** The replica ordinal from a StatefulSet pod name (`collector-2` -> 2), if it has one. */
export function ordinalFromHostname(hostname: string | undefined): number | undefined {
  const match = /-(\d+)$/.exec(hostname ?? '');
  return match ? Number(match[1]) : undefined;
}
