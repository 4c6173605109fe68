import { CORE_SETTINGS } from './settings/core.js';
import { HISTORY_SETTINGS } from './settings/history.js';
import { RECOVERY_SETTINGS } from './settings/recovery.js';
import { AUTH_SETTINGS } from './settings/auth.js';
import { PRESENCE_SETTINGS } from './settings/presence.js';
import { LIMITS_SETTINGS } from './settings/limits.js';
import { OPERATIONS_SETTINGS } from './settings/operations.js';
import { INGEST_SETTINGS } from './settings/ingest.js';
import { EVENTS_SETTINGS } from './settings/events.js';
import { SSE_SETTINGS } from './settings/sse.js';

export * from './types.js';

/** Every setting, in the order docs/reference/configuration.md's table lists them. */
export const SETTINGS = [
  ...CORE_SETTINGS,
  ...HISTORY_SETTINGS,
  ...RECOVERY_SETTINGS,
  ...AUTH_SETTINGS,
  ...PRESENCE_SETTINGS,
  ...LIMITS_SETTINGS,
  ...SSE_SETTINGS,
  ...OPERATIONS_SETTINGS,
  ...INGEST_SETTINGS,
  ...EVENTS_SETTINGS,
] as const;
