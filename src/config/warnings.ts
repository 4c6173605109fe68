import type { Config, Env } from './types.js';
import { unknownSettings } from './unknown.js';

/**
 * What a valid configuration may still get wrong, said at start-up (as log warnings) and by
 * `herald check`. Codes are stable; `setting` names the variable concerned, never its value.
 */
export interface ConfigWarning {
  readonly code: 'unknown_setting' | 'publish_loopback_only' | 'anonymous_only' | 'single_node';
  readonly message: string;
  readonly setting?: string;
  readonly didYouMean?: string;
  readonly publicRooms?: readonly string[];
}

export function configWarnings(config: Config, env: Env): ConfigWarning[] {
  const warnings = unknownSettingWarnings(env);
  if (config.publishKeys.length === 0) {
    warnings.push({ code: 'publish_loopback_only', message: 'PUBLISH_KEYS is not set: POST /v1/publish accepts loopback callers only' });
  }
  if (!config.jwtSecret && !config.jwtPublicKey && !config.jwksUrl && !config.connectProxyUrl) {
    warnings.push({
      code: 'anonymous_only',
      message: 'no JWT_SECRET, JWT_PUBLIC_KEY or JWKS_URL: every client is anonymous and may use PUBLIC_ROOMS only',
      publicRooms: config.publicRooms,
    });
  }
  if (!hasRedis(config)) {
    warnings.push({
      code: 'single_node',
      message: 'No Redis is set (REDIS_URL, REDIS_CLUSTER_NODES or REDIS_SENTINELS): single node with the in-memory adapter; replicas will not share rooms',
    });
  }
  return warnings;
}

/** The warnings that need no valid configuration: variables that look like misspelled settings. */
export function unknownSettingWarnings(env: Env): ConfigWarning[] {
  return unknownSettings(env).map((u) => ({
    code: 'unknown_setting',
    message: u.message,
    setting: u.name,
    ...(u.didYouMean ? { didYouMean: u.didYouMean } : {}),
  }));
}

export function hasRedis(config: Config): boolean {
  return config.redisUrl !== undefined || config.redisClusterNodes.length > 0 || config.redisSentinels.length > 0;
}
