import { createPublicKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createLocalJWKSet, type JSONWebKeySet } from 'jose';
import { isValidPattern } from '../protocol/patterns.js';
import type { Config, Env, PublishKey, Setting } from './types.js';

/** Shortest key accepted in PUBLISH_KEYS and CONTROL_KEYS (and `herald keygen`'s floor). */
export const KEY_MIN_LENGTH = 16;
/** Shortest JWT_SECRET: HS256 is only as strong as its secret (`herald keygen`'s default length). */
export const JWT_SECRET_MIN_LENGTH = 32;

export function setting<K extends keyof Config>(s: Setting<K>): Setting<K> {
  return s;
}

export function integer(min: number, max: number, fallback: number) {
  return (raw: string | undefined): number => {
    if (raw === undefined || raw === '') return fallback;
    if (!/^\d+$/.test(raw)) throw new Error(`must be a whole number from ${min} to ${max}, got "${raw}"`);
    const n = Number(raw);
    if (n < min || n > max) throw new Error(`must be from ${min} to ${max}, got ${n}`);
    return n;
  };
}

export function oneOf<T extends string>(allowed: readonly T[], fallback: T) {
  return (raw: string | undefined): T => {
    if (raw === undefined || raw === '') return fallback;
    if (!(allowed as readonly string[]).includes(raw)) {
      throw new Error(`must be one of ${allowed.join(', ')}, got "${raw}"`);
    }
    return raw as T;
  };
}

export function list(raw: string | undefined): string[] {
  return (raw ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}


/** Whether connections are authenticated: by a token key, or by the backend (CONNECT_PROXY_URL). */
export function hasAuth(env: Env): boolean {
  return Boolean(env.JWT_SECRET || env.JWT_PUBLIC_KEY || env.JWKS_URL || env.CONNECT_PROXY_URL);
}

export function readPem(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    throw new Error(`is neither a PEM key nor a readable file path ("${path}")`);
  }
}

/**
 * The key set of a `file:` JWKS_URL, read and checked once at start-up (a missing file, or one
 * that is not a JWKS, is a configuration error, listed with the others); throws an Error whose
 * message completes "JWKS_URL ...".
 */
export function readJwksFile(url: URL): JSONWebKeySet {
  let text: string;
  try {
    text = readFileSync(url, 'utf8');
  } catch (err) {
    throw new Error(`names a file that cannot be read (${(err as NodeJS.ErrnoException).code ?? String(err)}): ${url.href}`);
  }
  let jwks: unknown;
  try {
    jwks = JSON.parse(text);
  } catch {
    throw new Error(`names a file that is not JSON: ${url.href}`);
  }
  try {
    createLocalJWKSet(jwks as JSONWebKeySet);
  } catch (err) {
    throw new Error(`names a file that is not a JWKS ({"keys": [...]}: ${(err as Error).message}): ${url.href}`);
  }
  return jwks as JSONWebKeySet;
}

export function parsePublishKey(entry: string): PublishKey {
  const [key, ...options] = entry.split(/\s+/);
  if (!key || key.length < KEY_MIN_LENGTH) throw new Error(`each key must be at least ${KEY_MIN_LENGTH} characters long`);
  let rooms: string[] | undefined;
  for (const option of options) {
    const m = /^rooms=(.+)$/.exec(option);
    const patterns = m ? m[1]!.split('|') : [];
    if (!m || patterns.some((p) => !isValidPattern(p))) {
      throw new Error(`has a bad option "${option}": use rooms=<pattern>|<pattern>`);
    }
    rooms = patterns;
  }
  return Object.freeze({ key, rooms: rooms && Object.freeze(rooms) });
}
