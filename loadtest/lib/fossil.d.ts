export type DeltaErrorCode = 'delta_wrong_base' | 'delta_checksum' | 'delta_malformed';
export function deltaError(code: DeltaErrorCode, message: string): Error & { code: DeltaErrorCode };
/** Source, delta and result are binary strings: one character (code 0–255) per byte. */
export function applyDelta(source: string, delta: string): string;
export function checksum(bytes: string): number;
export function utf8Encode(s: string): string;
export function utf8Decode(bytes: string): string;
export function utf8Length(s: string): number;
export interface DeltaReceiver {
  receive(data: unknown, meta: { id?: string; base?: string } | undefined): { data: unknown; delta: boolean };
}
export function deltaReceiver(): DeltaReceiver;
