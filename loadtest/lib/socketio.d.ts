export function socketUrl(base: string): string;
export function connectFrame(auth?: object): string;
export function eventFrame(name: string, args?: unknown[], ackId?: number): string;
export const PONG: string;
export type Frame =
  | { type: 'open'; sid: string; pingInterval: number }
  | { type: 'ping' }
  | { type: 'connected'; sid: string; pid?: string }
  | { type: 'refused'; error: { message?: string; data?: { code?: string } } }
  | { type: 'event'; name: string; args: unknown[]; ackId?: number }
  | { type: 'ack'; id: number | undefined; args: unknown[] }
  | { type: 'disconnect' }
  | { type: 'close' }
  | { type: 'other'; frame: string };
export function parseFrame(frame: string): Frame;
export function isEventFrame(frame: string): boolean;
export function eventOffset(args: unknown[]): string | undefined;
