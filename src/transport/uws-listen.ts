import type { TemplatedApp, us_listen_socket } from 'uWebSockets.js';
import { ListenError } from '../errors.js';
import type { PausableListener } from './accept-guard.js';

type UwsModule = typeof import('uWebSockets.js');

/** A uWS listen socket that the descriptor guard can close and open again, and that can be closed for good. */
export interface UwsListener extends PausableListener {
  readonly port: number;
  /** Closes the listen socket for good (the drain); `resume` does nothing afterwards. */
  close(): void;
}

/**
 * uSockets' LIBUS_LISTEN_EXCLUSIVE_PORT (ListenOptions in uWS's typings, not exported at run time):
 * without it uWS sets SO_REUSEPORT, and a second process listening on the same port (another
 * herald, or anything else that sets SO_REUSEPORT) would silently share it, the kernel spreading
 * connections between the two. With it, binding a port something else listens on fails.
 */
const LIBUS_LISTEN_EXCLUSIVE_PORT = 1;

/** Binds `port` on `app`, exclusively; the listen socket, or undefined when it cannot be bound. uWS calls back before `listen` returns. */
function bind(app: TemplatedApp, host: string, port: number): us_listen_socket | undefined {
  let token: us_listen_socket | undefined;
  // The typings declare (port, options, cb) only; the binding also takes (host, port, options, cb).
  const listen = app.listen as unknown as (host: string, port: number, options: number, cb: (t: us_listen_socket | false) => void) => TemplatedApp;
  listen.call(app, host, port, LIBUS_LISTEN_EXCLUSIVE_PORT, (t: us_listen_socket | false) => {
    token = t || undefined;
  });
  return token;
}

/**
 * Listens on `host:port` with a listen socket that can be closed and bound again on the same port.
 *
 * uWS sets SO_REUSEADDR only when it binds a given port (never SO_REUSEPORT here: the port is
 * exclusive, so a port in use fails start-up with a ListenError naming PORT), and accepted
 * connections inherit the flag of their listen socket: after binding port 0, binding the port it
 * chose again fails with EADDRINUSE for as long as any connection accepted by the first socket
 * lives. So PORT=0 is resolved by a first bind, closed at once, and the chosen port is bound again
 * by number before any connection can arrive.
 */
export function listenUws(uws: UwsModule, app: TemplatedApp, host: string, port: number): UwsListener {
  let token = bind(app, host, port);
  if (!token) throw new ListenError('PORT', host, port);
  const bound = uws.us_socket_local_port(token);
  if (port === 0) {
    uws.us_listen_socket_close(token);
    token = bind(app, host, bound);
    if (!token) throw new ListenError('PORT', host, bound);
  }
  let closed = false;
  return {
    port: bound,
    pause() {
      if (token) uws.us_listen_socket_close(token);
      token = undefined;
    },
    resume() {
      if (closed || token) return true;
      token = bind(app, host, bound);
      return token !== undefined;
    },
    close() {
      closed = true;
      this.pause();
    },
  };
}
