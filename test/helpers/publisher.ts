import { setTimeout as delay } from 'node:timers/promises';

/** One `POST /v1/publish` and what came of it. */
export interface Attempt {
  readonly replica: 'A' | 'B';
  readonly room: string;
  readonly data: string;
  /** HTTP status; 0 when no answer came before the caller's bound (a hang). */
  readonly status: number;
  readonly body: any;
}

/**
 * POSTs to `/v1/publish`, giving up after `boundMs` (then status 0): a publish that hangs is
 * recorded as such, not waited on forever.
 */
export async function post(url: string, key: string, body: object, boundMs: number, idempotencyKey?: string): Promise<{ status: number; body: any }> {
  const headers: Record<string, string> = { 'content-type': 'application/json', authorization: `Bearer ${key}` };
  if (idempotencyKey) headers['idempotency-key'] = idempotencyKey;
  try {
    const res = await fetch(`${url}/v1/publish`, { method: 'POST', headers, body: JSON.stringify(body), signal: AbortSignal.timeout(boundMs) });
    return { status: res.status, body: await res.json() };
  } catch (err) {
    if ((err as Error).name === 'TimeoutError') return { status: 0, body: undefined };
    throw err;
  }
}

/**
 * Publishes in turn to each of `targets` and each of `rooms` until stopped, one request at a time
 * per target; every attempt is recorded. `pause` holds it between rounds.
 */
export function publishLoop(targets: Record<'A' | 'B', string>, key: string, rooms: readonly string[], boundMs: number) {
  const attempts: Attempt[] = [];
  let running = true;
  let paused = false;
  let busy = 0;
  let n = 0;
  const run = async (replica: 'A' | 'B') => {
    while (running) {
      if (paused) {
        await delay(20);
        continue;
      }
      busy++;
      for (const room of rooms) {
        const data = `${replica}-${n++}`;
        const r = await post(targets[replica], key, { room, event: 'm', data }, boundMs);
        attempts.push({ replica, room, data, status: r.status, body: r.body });
      }
      busy--;
      await delay(30);
    }
  };
  const loops = [run('A'), run('B')];
  return {
    attempts,
    /** Ids acknowledged (200) in `room`, optionally from one replica only, in the order they were acknowledged. */
    acked(room: string, replica?: 'A' | 'B'): string[] {
      return attempts.filter((a) => a.room === room && a.status === 200 && (!replica || a.replica === replica)).map((a) => a.body.ids[room] as string);
    },
    /**
     * What subscribers of `room` must have received, from its history (`entries`, oldest first):
     * every acknowledged message, and each whose outcome was unknown (publish_timeout) that
     * Redis did get, plus `extra` data published outside this loop.
     */
    expected(room: string, entries: readonly { id: string; data: unknown }[], extra: readonly string[] = []): string[] {
      const mine = attempts.filter((a) => a.room === room && (a.status === 200 || a.body?.error?.code === 'publish_timeout'));
      const data = new Set([...mine.map((a) => a.data), ...extra]);
      return entries.filter((e) => typeof e.data === 'string' && data.has(e.data)).map((e) => e.id);
    },
    /** Resolves once no request is under way. */
    async pause() {
      paused = true;
      while (busy > 0) await delay(10);
    },
    resume: () => (paused = false),
    async stop() {
      running = false;
      await Promise.all(loops);
    },
  };
}
