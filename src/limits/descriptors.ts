import { readdirSync, readFileSync, statSync } from 'node:fs';

/**
 * File descriptors: how many this process may hold, how many it holds, and how many connections
 * that leaves room for. Linux only (/proc); elsewhere every reading is undefined and herald sets
 * no cap of its own.
 */

/** The soft `Max open files` limit (RLIMIT_NOFILE) of this process, from /proc/self/limits. */
export function softDescriptorLimit(limitsFile = '/proc/self/limits'): number | undefined {
  let text: string;
  try {
    text = readFileSync(limitsFile, 'utf8');
  } catch {
    return undefined;
  }
  const m = /^Max open files\s+(\d+|unlimited)\s/m.exec(text);
  if (!m || m[1] === 'unlimited') return undefined;
  return Number(m[1]);
}

/**
 * Descriptors this process holds now. Linux 6.2+ reports the count as the size of /proc/self/fd
 * (one system call, however many are open); older kernels report 0 there and the directory is
 * listed instead (which itself takes a descriptor while it runs, counted here).
 */
export function openDescriptors(): number | undefined {
  try {
    const size = statSync('/proc/self/fd').size;
    return size > 0 ? size : readdirSync('/proc/self/fd').length;
  } catch {
    return undefined;
  }
}

/** Fewest descriptors held back from connections, for the process's own files and Redis. */
export const MIN_DESCRIPTOR_RESERVE = 64;
/** Most descriptors held back: past this the reserve covers everything but connections. */
export const MAX_DESCRIPTOR_RESERVE = 1024;
/** Share of the limit held back between the two bounds. */
export const DESCRIPTOR_RESERVE_SHARE = 0.05;

/**
 * Descriptors held back from client connections under `limit`: 5 % of it, at least 64 and at most
 * 1,024. They cover the process's own files (about 25: stdio, the event loop's, libraries), its
 * Redis connections (2 to 8), HTTP API and health-check connections, and connections accepted but
 * not yet answered: uWS accepts everything queued on the listen socket (backlog 512) before herald
 * sees one, and each holds a descriptor until its refusal is sent.
 */
export function descriptorReserve(limit: number): number {
  return Math.min(MAX_DESCRIPTOR_RESERVE, Math.max(MIN_DESCRIPTOR_RESERVE, Math.round(limit * DESCRIPTOR_RESERVE_SHARE)));
}

/**
 * MAX_CONNECTIONS when it is not set: the soft descriptor limit less `descriptorReserve`, at least 1;
 * undefined (no cap) when the limit cannot be read.
 */
export function defaultMaxConnections(limit: number | undefined): number | undefined {
  if (limit === undefined) return undefined;
  return Math.max(1, limit - descriptorReserve(limit));
}

/**
 * The cap a replica applies: MAX_CONNECTIONS when set (`configured` > 0) and the descriptor limit
 * can hold it, else `defaultMaxConnections`. `lowered` says a setting was cut down to fit.
 */
export function effectiveMaxConnections(configured: number, limit: number | undefined): { max: number | undefined; lowered: boolean } {
  const fits = defaultMaxConnections(limit);
  if (configured === 0) return { max: fits, lowered: false };
  if (fits !== undefined && configured > fits) return { max: fits, lowered: true };
  return { max: configured, lowered: false };
}
