import { integer, setting } from '../parse.js';

/** Server-Sent Events (`GET /v1/stream`, src/sse/). */
export const SSE_SETTINGS = [
  setting({
    env: 'SSE_MAX_ROOMS',
    key: 'sseMaxRooms',
    doc: 'Rooms one Server-Sent Events stream (`GET /v1/stream?room=…`) may name; more is refused with 400 `too_many_subscriptions`. It also bounds the stream\'s `id:` (the position of each history room): at most 9 + 32 characters per room.',
    defaultText: '16',
    parse: integer(1, 64, 16),
  }),
  setting({
    env: 'SSE_HEARTBEAT_SECONDS',
    key: 'sseHeartbeatSeconds',
    doc: 'A stream that has sent nothing for this long gets a comment line (`:`), so proxies with idle timeouts (HAProxy `timeout server`, nginx `proxy_read_timeout`) keep it open and a dead peer is found.',
    defaultText: '15',
    parse: integer(1, 300, 15),
  }),
  setting({
    env: 'SSE_RETRY_MS',
    key: 'sseRetryMs',
    doc: 'The `retry:` a stream starts with and ends with on a drain: how long an EventSource waits before it reconnects (through the balancer, with `Last-Event-ID`).',
    defaultText: '1000',
    parse: integer(100, 600_000, 1000),
  }),
  setting({
    env: 'SSE_STREAMS_PER_IP',
    key: 'sseStreamsPerIp',
    doc: 'Event streams one client address (as TRUST_PROXY tells it) may hold open on one replica; past it 429 `too_many_streams`. New streams also count against CONNECT_RATE_PER_IP / CONNECT_BURST_PER_IP and MAX_CONNECTIONS, like Socket.IO connections.',
    defaultText: '100',
    parse: integer(1, 1_000_000, 100),
  }),
] as const;
