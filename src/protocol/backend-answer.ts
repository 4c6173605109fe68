/**
 * The most herald reads of one answer from a backend: a webhook receiver's (whose body herald
 * ignores) and the subscribe and connect proxies' (a decision of a few hundred bytes; a connect
 * answer's claims are bounded like a token's, 8 KiB). Read whole with no cap, eight 50 MB
 * answers in flight took a replica's RSS from 93 to 662 MB.
 */
export const BACKEND_ANSWER_MAX_BYTES = 64 * 1024;

/** An answer longer than `BACKEND_ANSWER_MAX_BYTES`, declared or streamed. */
export class AnswerTooLarge extends Error {
  constructor(readonly maxBytes: number) {
    super(`answer over ${maxBytes} bytes`);
    this.name = 'AnswerTooLarge';
  }
}

/**
 * The body of `res`, read up to `maxBytes`. Past that (a Content-Length over it, or that many
 * bytes streamed), reading stops and the body is cancelled, which makes fetch close the
 * connection rather than drain the rest; then it throws `AnswerTooLarge`.
 */
export async function readCapped(res: Response, maxBytes = BACKEND_ANSWER_MAX_BYTES): Promise<Buffer> {
  if (!res.body) return Buffer.alloc(0);
  const reader = res.body.getReader();
  const tooLarge = async () => {
    await reader.cancel();
    return new AnswerTooLarge(maxBytes);
  };
  if (Number(res.headers.get('content-length')) > maxBytes) throw await tooLarge();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return Buffer.concat(chunks, size);
    size += value.byteLength;
    if (size > maxBytes) throw await tooLarge();
    chunks.push(value);
  }
}
