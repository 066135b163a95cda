import { describe, expect, it } from 'vitest';
import { MembershipMessageError, parseHeartbeatMessage, parseProfileMessage } from '../src/cluster/membership-messages.js';
import { FrameCodec, FrameDecoder } from '../src/network/frame-codec.js';

const announcement = () => ({
  t: 'profile',
  member: {
    peerId: '12D3KooWExample',
    name: 'laptop',
    instanceId: '6c0f3f4e-2a55-4a4c-9d0e-2b3f1d1c9a10',
    addresses: ['/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWExample'],
    profile: { gflopsDecode: 17.9, gflopsPrefill: 40.2, memBandwidthGBps: 27.1, memoryBytes: 8e9, memorySource: '0.7 × free memory', runtime: 'node', backend: 'kernels', isa: 'simd128', threads: 1, cores: 2, hostname: 'h', measuredAt: 1 },
    load: { slowdown: 3.1, calibration: 1.4, promptCalibration: 0.62, source: 'stage', since: 5, otherCpuCores: 1.2, availableMemoryBytes: 4e9, memoryBudgetBytes: 6e9, memoryReason: 'lowered to 6000 MB at run time' },
    stageInfo: { model: 'stories260K|llama|L5', ready: true, ranges: [[0, 2]] },
    links: { '12D3KooWOther': { rttMs: 0.8, bandwidthMBps: 250, measuredAt: 2 } },
    version: 3,
  },
});

describe('membership messages from peers', () => {
  it('accepts a real announcement, a goodbye and heartbeats with gossip', () => {
    const a = announcement();
    expect(parseProfileMessage(a)).toEqual(a);
    expect(parseProfileMessage({ t: 'bye' })).toEqual({ t: 'bye' });
    expect(parseProfileMessage({ ...a, member: { ...a.member, stageInfo: null } })).toEqual({ ...a, member: { ...a.member, stageInfo: null } });
    expect(parseProfileMessage({ ...a, member: { ...a.member, load: null } })).toEqual({ ...a, member: { ...a.member, load: null } });
    // The KV cache type travels when the node says it (the planner counts the widest), and may be absent.
    const q8 = { ...a, member: { ...a.member, profile: { ...a.member.profile, kvCache: 'q8_0' } } };
    expect(parseProfileMessage(q8)).toEqual(q8);
    // The fixed costs and the decode figure's spread travel when measured (older nodes do not send them).
    const fixed = { ...a, member: { ...a.member, profile: { ...a.member.profile, decodeSpread: 0.2, stepOverheadMs: 0.41, tokenOverheadMs: 0.3, passOverheadMs: 0.1, wakeMs: 0.2 } } };
    expect(parseProfileMessage(fixed)).toEqual(fixed);
    // A coordinator's served-hop excess travels in its load once measured (negative when fixed costs were over-measured).
    const excess = (hopExcessMs: number) => ({ ...a, member: { ...a.member, load: { ...a.member.load!, hopExcessMs } } });
    expect(parseProfileMessage(excess(0.25))).toEqual(excess(0.25));
    expect(parseProfileMessage(excess(-0.1))).toEqual(excess(-0.1));
    expect(parseHeartbeatMessage({ t: 'hb', seq: 5 })).toEqual({ t: 'hb', seq: 5 });
    expect(parseHeartbeatMessage({ t: 'hb', seq: 5, lagMs: 340 })).toEqual({ t: 'hb', seq: 5, lagMs: 340 });
    const gossip = { t: 'hb', seq: 6, members: [{ peerId: 'p', instanceId: 'i', addresses: ['/ip4/127.0.0.1/tcp/1/p2p/p'], heardMsAgo: 12 }] };
    expect(parseHeartbeatMessage(gossip)).toEqual(gossip);
  });

  it('refuses announcements the planner must never see', () => {
    const bad = (edit: (m: ReturnType<typeof announcement>['member']) => void) => {
      const a = announcement();
      edit(a.member);
      return () => parseProfileMessage(a);
    };
    expect(bad((m) => (m.profile.memoryBytes = NaN))).toThrow(/memoryBytes/);
    expect(bad((m) => (m.profile.gflopsDecode = -1))).toThrow(/gflopsDecode/);
    expect(bad((m) => ((m.profile as { runtime: string }).runtime = 'gpu'))).toThrow(/runtime/);
    expect(bad((m) => ((m.profile as { backend: string }).backend = 'tfjs-cpu'))).toThrow(/backend/);
    expect(bad((m) => ((m.profile as { threads: number }).threads = 0))).toThrow(/threads/);
    expect(bad((m) => ((m.profile as { stepOverheadMs?: number }).stepOverheadMs = -0.5))).toThrow(/stepOverheadMs/);
    expect(bad((m) => ((m.profile as { tokenOverheadMs?: unknown }).tokenOverheadMs = 'slow'))).toThrow(/tokenOverheadMs/);
    for (const hopExcessMs of ['0.2', Number.POSITIVE_INFINITY, NaN, 1e9]) expect(bad((m) => ((m.load as { hopExcessMs?: unknown }).hopExcessMs = hopExcessMs))).toThrow(/hopExcessMs/);
    expect(bad((m) => ((m.profile as { passOverheadMs?: number }).passOverheadMs = -1))).toThrow(/passOverheadMs/);
    expect(bad((m) => ((m.profile as { wakeMs?: unknown }).wakeMs = 'soon'))).toThrow(/wakeMs/);
    expect(bad((m) => ((m.profile as { kvCache?: string }).kvCache = 'q4_0'))).toThrow(/kvCache must be one of f16, f32, q8_0/);
    expect(bad((m) => ((m as { peerId: unknown }).peerId = 5))).toThrow(/peerId/);
    expect(bad((m) => ((m.stageInfo as { model: unknown }).model = 7))).toThrow(/stageInfo.model/);
    expect(bad((m) => ((m.stageInfo as { ranges: unknown }).ranges = [[0, 'x']]))).toThrow(/ranges/);
    expect(bad((m) => ((m as { links: unknown }).links = { p: { rttMs: 'fast' } }))).toThrow(/rttMs/);
    expect(bad((m) => ((m as { addresses: unknown }).addresses = new Array(1000).fill('/ip4/1.2.3.4')))).toThrow(/addresses/);
    expect(bad((m) => ((m as { version: unknown }).version = 1.5))).toThrow(/version/);
    // A load the planner divides speeds by: a slowdown below 1 would make a device look faster than it measured.
    expect(bad((m) => (m.load.slowdown = 0.2))).toThrow(/slowdown/);
    expect(bad((m) => (m.load.calibration = -1))).toThrow(/calibration/);
    expect(bad((m) => (m.load.promptCalibration = 0))).toThrow(/promptCalibration/);
    expect(bad((m) => ((m.load as { promptCalibration: unknown }).promptCalibration = '2'))).toThrow(/promptCalibration/);
    expect(bad((m) => ((m.load as { source: string }).source = 'guess'))).toThrow(/source/);
    expect(bad((m) => (m.load.memoryBudgetBytes = Infinity))).toThrow(/memoryBudgetBytes/);
    expect(() => parseHeartbeatMessage({ t: 'hb', seq: 1, lagMs: -5 })).toThrow(/lagMs/);
    for (const garbage of [null, 5, 'profile', [], new Uint8Array(3), { t: 'profile' }, { t: 'hello' }]) {
      expect(() => parseProfileMessage(garbage), JSON.stringify(garbage)).toThrow(MembershipMessageError);
    }
    for (const garbage of [{ t: 'hb' }, { t: 'hb', seq: -1 }, { t: 'hb', seq: 1, members: 'all' }, { t: 'hb', seq: 1, members: [{ peerId: 'p' }] }]) {
      expect(() => parseHeartbeatMessage(garbage), JSON.stringify(garbage)).toThrow(MembershipMessageError);
    }
  });
});

describe('frame decoder under a peer that announces large frames', () => {
  it('holds only the bytes received, not what the headers announce', () => {
    const codec = new FrameCodec(); // 64 MiB limit
    const header = new Uint8Array(4);
    new DataView(header.buffer).setUint32(0, 60 * 1024 * 1024);
    const before = process.memoryUsage().arrayBuffers;
    // 200 streams each announcing 60 MiB and sending 1 KB: 12 GB if bodies were allocated from the header.
    const decoders = Array.from({ length: 200 }, () => {
      const d = new FrameDecoder(codec);
      d.push(header);
      d.push(new Uint8Array(1024));
      return d;
    });
    const grown = process.memoryUsage().arrayBuffers - before;
    expect(decoders.every((d) => d.pendingBytes === 1024)).toBe(true);
    expect(grown).toBeLessThan(50 * 1024 * 1024);
  });

  it('still assembles a frame that arrives in many pieces', () => {
    const codec = new FrameCodec();
    const frame = codec.encode({ hidden: Float32Array.from({ length: 20_000 }, (_, i) => i) });
    const d = new FrameDecoder(codec);
    const out: { hidden: Float32Array }[] = [];
    for (let i = 0; i < frame.length; i += 1000) d.push(frame.slice(i, i + 1000), out);
    expect(out).toHaveLength(1);
    expect(out[0].hidden[19_999]).toBe(19_999);
    expect(d.pendingBytes).toBe(0);
  });
});
