import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { HMAC_ALGS, JWKS_ALGS, RSA_ALGS } from '../auth/jwt.js';
import type { Config } from '../config/schema.js';
import { CommandFailed, UsageError } from './command.js';

export interface SigningKey {
  readonly key: KeyObject | Uint8Array;
  readonly alg: string;
}

type KeySettings = Pick<Config, 'jwtSecret' | 'jwtPublicKey'>;

/**
 * The key `herald token` signs with: JWT_SECRET when herald verifies with it, else the private key
 * file given (herald itself holds only public keys). The algorithm defaults to the first herald
 * accepts for that key; `--alg` may pick another of those.
 */
export function signingKey(settings: KeySettings, keyFile: string | undefined, alg: string | undefined): SigningKey {
  if (keyFile === undefined) {
    if (!settings.jwtSecret) {
      throw new CommandFailed('no signing key: set JWT_SECRET as herald has it, or pass --key <private key PEM file> for a herald with JWT_PUBLIC_KEY or JWKS_URL');
    }
    return { key: new TextEncoder().encode(settings.jwtSecret), alg: pick(alg, HMAC_ALGS, 'JWT_SECRET') };
  }
  if (settings.jwtSecret) throw new CommandFailed('JWT_SECRET is set, so herald accepts only HS256/HS384/HS512 tokens signed with it: leave out --key');
  const key = readPrivateKey(keyFile);
  if (settings.jwtPublicKey && !samePublicKey(key, settings.jwtPublicKey)) {
    throw new CommandFailed(`--key ${keyFile} is not the private key of JWT_PUBLIC_KEY: herald would refuse its tokens`);
  }
  const [kind, algs] = algorithmsFor(key);
  return { key, alg: pick(alg, algs.filter((a) => JWKS_ALGS.includes(a)), `an ${kind} key`) };
}

function readPrivateKey(file: string): KeyObject {
  let pem: string;
  try {
    pem = readFileSync(file, 'utf8');
  } catch (err) {
    throw new CommandFailed(`cannot read --key ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  try {
    return createPrivateKey(pem);
  } catch {
    throw new CommandFailed(`--key ${file} is not a PEM private key (RSA, EC P-256/P-384 or Ed25519)`);
  }
}

function samePublicKey(key: KeyObject, publicPem: string): boolean {
  const der = (k: KeyObject) => k.export({ type: 'spki', format: 'der' });
  return der(createPublicKey(key)).equals(der(createPublicKey(publicPem)));
}

function algorithmsFor(key: KeyObject): [string, string[]] {
  const curve = key.asymmetricKeyDetails?.namedCurve;
  switch (key.asymmetricKeyType) {
    case 'rsa':
      return ['RSA', RSA_ALGS];
    case 'rsa-pss':
      return ['RSA-PSS', RSA_ALGS.filter((a) => a.startsWith('PS'))];
    case 'ec':
      if (curve === 'prime256v1') return ['EC P-256', ['ES256']];
      if (curve === 'secp384r1') return ['EC P-384', ['ES384']];
      throw new CommandFailed(`--key is an EC key on ${curve ?? 'an unknown curve'}; herald verifies P-256 (ES256) and P-384 (ES384)`);
    case 'ed25519':
      return ['Ed25519', ['EdDSA']];
    default:
      throw new CommandFailed(`--key is a ${key.asymmetricKeyType ?? 'secret'} key; herald verifies RSA, EC P-256/P-384 and Ed25519 keys`);
  }
}

function pick(alg: string | undefined, allowed: string[], what: string): string {
  if (alg === undefined) return allowed[0]!;
  if (!allowed.includes(alg)) throw new UsageError(`--alg ${alg} does not fit ${what}: use ${allowed.join(', ')}`);
  return alg;
}
