export type DeltaErrorCode = 'delta_wrong_base' | 'delta_checksum' | 'delta_malformed';
export function deltaError(code: DeltaErrorCode, message: string): Error & { code: DeltaErrorCode };
/** `delta`: one character (code 0–255) per byte, as herald sends it. */
export function applyDelta(source: Uint8Array, delta: string): Uint8Array;
export function checksum(bytes: Uint8Array): number;
export function utf8Encode(s: string): Uint8Array;
export function utf8Decode(bytes: Uint8Array): string;
export function utf8Length(s: string): number;
/** The UTF-8 code used where the runtime has no TextEncoder/TextDecoder. */
export const portable: { encode(s: string): Uint8Array; decode(bytes: Uint8Array): string };
export interface DeltaReceiver {
  receive(data: unknown, meta: { id?: string; base?: string } | undefined): { data: unknown; delta: boolean };
}
export function deltaReceiver(): DeltaReceiver;
