import { integer, setting } from '../parse.js';

/** A longer proxy chain than this is a typo. */
const MAX_TRUSTED_PROXIES = 10;

/** Per-connection and per-IP limits, HTTP timeouts. */
export const LIMITS_SETTINGS = [
  setting({
    env: 'MAX_SUBSCRIPTIONS',
    key: 'maxSubscriptions',
    doc: 'Rooms one connection may be subscribed to at once (its own `user:` room not counted); beyond it `subscribe` acks `too_many_subscriptions`.',
    defaultText: '100',
    parse: integer(1, 100_000, 100),
  }),
  setting({
    env: 'CLIENT_RATE',
    key: 'clientRate',
    doc: 'Events per second a connection may send, sustained (token bucket). Over it: an error ack `rate_limited`; if a connection keeps going for as many refusals again as its burst, it is disconnected with `herald:disconnect {code: "rate_limited"}`.',
    defaultText: '20',
    parse: integer(1, 100_000, 20),
  }),
  setting({
    env: 'CLIENT_BURST',
    key: 'clientBurst',
    doc: 'Events a connection may send in a burst.',
    defaultText: '60',
    parse: integer(1, 100_000, 60),
  }),
  setting({
    env: 'CLIENT_MAX_BYTES',
    key: 'clientMaxBytes',
    doc: 'Largest message a client may send (Socket.IO `maxHttpBufferSize`, uWS `maxPayloadLength`), counted after inflating when `WS_COMPRESSION=on`; a larger WebSocket message closes the connection (1009 on the node transport, 1006 on uWS).',
    defaultText: '65536',
    parse: integer(1024, 16 * 1024 * 1024, 64 * 1024),
  }),
  setting({
    env: 'MAX_CONNECTIONS',
    key: 'maxConnections',
    doc: 'Most client connections (Engine.IO sessions: WebSocket or long-polling) one replica holds. Past it new handshakes get HTTP 503 `over_capacity` with `Retry-After: 1` and the connection is closed, so a balancer or the client tries another replica; `herald_connections_refused_total{reason="capacity"}` counts them. Unset or 0: the soft descriptor limit (`ulimit -n`, read from /proc/self/limits) less 5 % of it (at least 64, at most 1,024 descriptors) kept for Redis, HTTP and the process\'s own files; no cap where that limit cannot be read. A value the descriptor limit cannot hold is lowered to that default, with a warning.',
    defaultText: '(descriptor limit − reserve)',
    parse: integer(0, 10_000_000, 0),
  }),
  setting({
    env: 'HANDSHAKE_MAX_LAG_MS',
    key: 'handshakeMaxLagMs',
    doc: 'New handshakes (Socket.IO on both transports, and event streams) are refused with HTTP 503 `overloaded` and `Retry-After: 1` while this replica\'s event loop has been more than this many milliseconds behind (smoothed over its last ticks, so one long broadcast does not trip it); the connection is closed, and the client\'s backoff or the balancer sends it elsewhere. Connections already open are untouched. A handshake answered after its client gave up is work for nothing that the client then asks for again: in a reconnect storm on a saturated machine that feeds itself. Set it to about a sixth of your clients\' connect timeout (socket.io-client\'s `timeout`, 20 s by default): a reconnect takes several turns of the loop. `herald_connections_refused_total{reason="overloaded"}` counts the refusals. 0: never.',
    defaultText: '3000',
    parse: integer(0, 600_000, 3000),
  }),
  setting({
    env: 'CONNECT_RATE_PER_IP',
    key: 'connectRatePerIp',
    doc: 'New Socket.IO connections per second from one client IP, sustained; over it the handshake is refused (`rate_limited`).',
    defaultText: '20',
    parse: integer(1, 100_000, 20),
  }),
  setting({
    env: 'CONNECT_BURST_PER_IP',
    key: 'connectBurstPerIp',
    doc: 'New connections from one client IP in a burst (a reconnect avalanche behind one NAT).',
    defaultText: '100',
    parse: integer(1, 1_000_000, 100),
  }),
  setting({
    env: 'TRUST_PROXY',
    key: 'trustProxy',
    doc: 'How many proxies in front of herald append the client address to `X-Forwarded-For` (HAProxy `option forwardfor`, ingress-nginx, a cloud load balancer). Per-IP limits then count the n-th address from the right of that header, the one the outermost trusted proxy wrote; addresses further left are chosen by the client and ignored. `true` is 1, `false` or 0 uses the peer address. Set it only when clients cannot reach herald except through those proxies.',
    defaultText: '0',
    parse: (raw) => {
      if (raw === undefined || raw === '' || raw === 'false') return 0;
      if (raw === 'true') return 1;
      if (!/^\d+$/.test(raw) || Number(raw) > MAX_TRUSTED_PROXIES) {
        throw new Error(`must be the number of proxies in front of herald (0 to ${MAX_TRUSTED_PROXIES}), true (1) or false (0), got "${raw}"`);
      }
      return Number(raw);
    },
  }),
  setting({
    env: 'ADMIN_UI_LOGINS_PER_IP',
    key: 'adminUiLoginsPerIp',
    doc: 'Admin UI password attempts per minute from one client address (the address per-IP limits count, see `TRUST_PROXY`). Over it a login is refused at once with `connect_error` `rate_limited`, without checking the password.',
    defaultText: '10',
    parse: integer(1, 1000, 10),
  }),
  setting({
    env: 'ADMIN_UI_LOGINS_PER_CONNECTION',
    key: 'adminUiLoginsPerConnection',
    doc: 'Admin UI password attempts per minute on one Engine.IO connection (several `/admin` CONNECT packets in one connection); over it refused like `ADMIN_UI_LOGINS_PER_IP`.',
    defaultText: '3',
    parse: integer(1, 1000, 3),
  }),
  setting({
    env: 'HTTP_REQUEST_TIMEOUT_SECONDS',
    key: 'httpRequestTimeoutSeconds',
    doc: 'Seconds an HTTP request (headers and body) may take to arrive; slower ones get 408 and are closed.',
    defaultText: '10',
    parse: integer(1, 600, 10),
  }),
] as const;
