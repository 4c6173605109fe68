import { instrument } from '@socket.io/admin-ui';
import type { Server } from 'socket.io';
import type { Config } from '../config/schema.js';
import type { Logger } from '../observability/logger.js';
import type { ConnectGuard } from '../realtime/connect-guard.js';
import { ADMIN_NAMESPACE, installAdminLogin } from './login.js';

/**
 * The read-only Socket.IO admin UI, when ADMIN_UI_USERNAME and ADMIN_UI_PASSWORD_HASH are set,
 * behind herald's login (rate-limited, bcrypt off the event loop) instead of admin-ui's basic auth.
 */
export function installAdminUi(config: Config, io: Server, connects: ConnectGuard, logger: Logger): void {
  if (!config.adminUiUsername || !config.adminUiPasswordHash) return;
  installAdminLogin(io.of(ADMIN_NAMESPACE), {
    username: config.adminUiUsername,
    passwordHash: config.adminUiPasswordHash,
    attemptsPerIpPerMinute: config.adminUiLoginsPerIp,
    attemptsPerConnectionPerMinute: config.adminUiLoginsPerConnection,
    trustedProxies: config.trustProxy,
    connects,
    logger,
  });
  instrument(io, { namespaceName: ADMIN_NAMESPACE, auth: false, mode: 'production', readonly: true });
}
