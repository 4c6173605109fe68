import { integer, setting } from '../parse.js';

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
    doc: 'Largest message a client may send (Socket.IO `maxHttpBufferSize`, uWS `maxPayloadLength`); a larger WebSocket frame closes the connection (1009 on the node transport).',
    defaultText: '65536',
    parse: integer(1024, 16 * 1024 * 1024, 64 * 1024),
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
    doc: 'Take the client IP for per-IP limits from the first `X-Forwarded-For` address. Only behind a proxy that sets it.',
    defaultText: 'false',
    parse: (raw) => {
      if (raw === undefined || raw === '' || raw === 'false') return false;
      if (raw === 'true') return true;
      throw new Error(`must be true or false, got "${raw}"`);
    },
  }),
  setting({
    env: 'HTTP_REQUEST_TIMEOUT_SECONDS',
    key: 'httpRequestTimeoutSeconds',
    doc: 'Seconds an HTTP request (headers and body) may take to arrive; slower ones get 408 and are closed.',
    defaultText: '10',
    parse: integer(1, 600, 10),
  }),
] as const;
