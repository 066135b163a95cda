import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FrameCodec, FrameDecodeError, FrameDecoder, FrameTooLargeError } from '../src/network/frame-codec.js';

describe('frame codec', () => {
  it('round-trips Float32Array payloads, whole and split at every byte boundary', () => {
    const codec = new FrameCodec();
    const hidden = Float32Array.from({ length: 576 }, (_, i) => Math.sin(i) * 1000);
    const message = { kind: 'activation', seq: 7, tokens: [1, 2, 3], hidden };
    const frame = codec.encode(message);
    const whole = codec.decodeFrame(frame) as typeof message;
    expect(whole.hidden).toBeInstanceOf(Float32Array);
    expect(whole.hidden.byteOffset % 4).toBe(0);
    expect(Array.from(whole.hidden)).toEqual(Array.from(hidden));
    expect(whole.tokens).toEqual([1, 2, 3]);

    for (const cut of [1, 3, 4, 5, 100, frame.length - 1]) {
      const decoder = new FrameDecoder(codec);
      expect(decoder.push(frame.subarray(0, cut))).toEqual([]);
      const [m] = decoder.push(frame.subarray(cut)) as (typeof message)[];
      expect(Array.from(m.hidden)).toEqual(Array.from(hidden));
    }
  });

  it('decodes several frames from one chunk and a frame spread over many chunks', () => {
    const codec = new FrameCodec();
    const frames = [1, 2, 3].map((n) => codec.encode({ n, data: new Float32Array(n * 1000).fill(n) }));
    const joined = Buffer.concat(frames);
    const decoder = new FrameDecoder(codec);
    const out: { n: number; data: Float32Array }[] = [];
    for (let i = 0; i < joined.length; i += 777) decoder.push(joined.subarray(i, i + 777), out);
    expect(out.map((m) => m.n)).toEqual([1, 2, 3]);
    expect(out[2].data.length).toBe(3000);
    expect(out[2].data.every((v) => v === 3)).toBe(true);
    expect(decoder.pendingBytes).toBe(0);
  });

  it('rejects oversized frames on encode and from the header alone on decode', () => {
    const small = new FrameCodec({ maxFrameBytes: 1024 });
    expect(() => small.encode({ data: new Float32Array(512) })).toThrow(FrameTooLargeError);
    const big = new FrameCodec().encode({ data: new Float32Array(512) });
    // Only the header is pushed: the limit is enforced before any body bytes are buffered.
    expect(() => new FrameDecoder(small).push(big.subarray(0, 4))).toThrow(FrameTooLargeError);
  });

  it('turns random garbage into FrameDecodeError / FrameTooLargeError only', () => {
    const codec = new FrameCodec({ maxFrameBytes: 4096 });
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 600 }), fc.boolean(), (bytes, withHeader) => {
        const decoder = new FrameDecoder(codec);
        let input = bytes;
        if (withHeader) {
          // A valid header in front of a garbage body reaches msgpack decoding.
          input = new Uint8Array(4 + bytes.length);
          new DataView(input.buffer).setUint32(0, bytes.length);
          input.set(bytes, 4);
        }
        try {
          decoder.push(input);
        } catch (err) {
          if (!(err instanceof FrameDecodeError || err instanceof FrameTooLargeError)) throw err;
        }
      }),
      { numRuns: 3000 },
    );
    expect(() => codec.decodeBody(Uint8Array.of(0x92, 0x01))).toThrow(FrameDecodeError); // truncated array
    expect(() => codec.decodeBody(new Uint8Array(0))).toThrow(FrameDecodeError);
  });
});
