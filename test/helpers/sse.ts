import { waitFor } from './wait.js';

/** One event of a stream as a reader sees it. */
export interface SseEvent {
  /** The `id:` in force for it (the last one seen, as EventSource's `lastEventId`). */
  lastEventId: string;
  /** Its own `id:` line, if it had one. */
  id: string | undefined;
  event: string;
  /** `data:` parsed: `{data, meta?}`. */
  data: { data: any; meta?: { room: string; id: string; ts: number } };
}

/** A raw reader of `GET /v1/stream` over fetch: every line kept, nothing retried. */
export interface SseReader {
  readonly status: number;
  readonly headers: Headers;
  /** The JSON body of a refusal (status other than 200). */
  readonly error: { code: string; message: string } | undefined;
  readonly events: SseEvent[];
  /** Every raw line, comments and `retry:` included. */
  readonly lines: string[];
  /** Resolves once the server ended the stream. */
  readonly ended: Promise<void>;
  waitFor(what: string, predicate: (e: SseEvent) => boolean, timeoutMs?: number): Promise<SseEvent>;
  close(): void;
}

export async function openSse(url: string, headers: Record<string, string> = {}): Promise<SseReader> {
  const controller = new AbortController();
  const res = await fetch(url, { headers: { accept: 'text/event-stream', ...headers }, signal: controller.signal });
  const events: SseEvent[] = [];
  const lines: string[] = [];
  if (res.status !== 200) {
    const body = (await res.json()) as { error: { code: string; message: string } };
    return { status: res.status, headers: res.headers, error: body.error, events, lines, ended: Promise.resolve(), waitFor: () => Promise.reject(new Error(`refused ${res.status}`)), close() {} };
  }
  let lastEventId = '';
  let pending: { id?: string; event?: string; data?: string } = {};
  const feed = (line: string) => {
    lines.push(line);
    if (line === '') {
      if (pending.id !== undefined) lastEventId = pending.id;
      if (pending.data !== undefined) events.push({ lastEventId, id: pending.id, event: pending.event ?? 'message', data: JSON.parse(pending.data) });
      pending = {};
      return;
    }
    if (line.startsWith(':')) return;
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    const value = colon === -1 ? '' : line.slice(colon + 1).replace(/^ /, '');
    if (field === 'id') pending.id = value;
    else if (field === 'event') pending.event = value;
    else if (field === 'data') pending.data = pending.data === undefined ? value : `${pending.data}\n${value}`;
  };
  const ended = (async () => {
    const decoder = new TextDecoder();
    let buffer = '';
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        buffer += decoder.decode(chunk, { stream: true });
        let nl: number;
        while ((nl = buffer.indexOf('\n')) !== -1) {
          feed(buffer.slice(0, nl));
          buffer = buffer.slice(nl + 1);
        }
      }
    } catch {
      // Aborted by `close`, or the connection was cut.
    }
  })();
  return {
    status: res.status,
    headers: res.headers,
    error: undefined,
    events,
    lines,
    ended,
    waitFor: (what, predicate, timeoutMs) => waitFor(what, () => events.find(predicate), timeoutMs),
    close: () => controller.abort(),
  };
}
