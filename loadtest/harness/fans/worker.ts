/**
 * A client process of the fans scenario: holds its share of the fans (fan.ts) and reports to the
 * coordinator (pool.ts) over IPC.
 */
import { SignJWT } from 'jose';
import { Balancer, Fan, PhaseStats, type FanWorld } from './fan.js';
import { matchRoom, userId, type FansCommand, type FansPlan, type FansReport, type FansStatus, type PhaseReport } from './protocol.js';

let fans: Fan[] = [];
const phases = new Map<string, PhaseStats>();
let lastBackAt = 0;
let lastFirstLiveAt = 0;
const firstLivePerSecond: Record<string, number> = {};

const world: FanWorld = {
  phase: new PhaseStats(0),
  balancer: new Balancer(),
  localAddresses: [],
  forwardedFor: false,
  live(_fan, first) {
    const now = Date.now();
    if (first) {
      const s = String(Math.floor(now / 1000));
      firstLivePerSecond[s] = (firstLivePerSecond[s] ?? 0) + 1;
      lastFirstLiveAt = now;
    } else {
      lastBackAt = Math.max(lastBackAt, now);
      const slot = String(Math.floor(now / 100));
      world.phase.backPer100ms[slot] = (world.phase.backPer100ms[slot] ?? 0) + 1;
    }
  },
};
phases.set('connect', world.phase);

/** Runs `fn` over `items`, at most `limit` at once. */
async function pool<T>(items: T[], limit: number, fn: (t: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) await fn(items[next++]!);
  }));
}

async function open(plan: FansPlan): Promise<void> {
  world.balancer.setUp(plan.urls);
  Object.assign(world, { localAddresses: plan.localAddresses, forwardedFor: plan.forwardedFor });
  const key = new TextEncoder().encode(plan.jwtSecret);
  for (let n = plan.from; n < plan.to; n++) {
    const token = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject(userId(n)).setExpirationTime('4h').sign(key);
    fans.push(new Fan(n, n % plan.matches, token, world));
  }
  // The first connections at a bounded concurrency; a refused one retries by itself with backoff.
  void pool(fans, plan.concurrency, (f) => f.connect());
}

function status(): FansStatus {
  let live = 0;
  let droppedInPhase = 0;
  const states: Record<string, number> = {};
  for (const f of fans) {
    states[f.state] = (states[f.state] ?? 0) + 1;
    if (f.state === 'live') live++;
    if (f.droppedIn.at(-1) === world.phase.id) droppedInPhase++;
  }
  return { cmd: 'status', fans: fans.length, delivered: world.phase.delivered, live, lastBackAt, lastFirstLiveAt, droppedInPhase, firstLivePerSecond, states };
}

function phaseReport(p: PhaseStats): PhaseReport {
  return {
    latency: p.latency.toPairs(),
    healthyLatency: p.healthyLatency.toPairs(),
    broadcasts: Object.fromEntries([...p.broadcasts].map(([seq, v]) => [String(seq), v])),
    delivered: p.delivered,
    replayed: p.replayed,
    drops: p.drops,
    refusals: p.refusals,
    reconnects: p.reconnects,
    redispatched: p.redispatched,
    sessionsRecovered: p.sessionsRecovered,
    sinceRecovered: p.sinceRecovered,
    sinceNotRecovered: p.sinceNotRecovered,
    resets: p.resets,
    backPer100ms: p.backPer100ms,
  };
}

function report(accepted: Extract<FansCommand, { cmd: 'report' }>['accepted']): FansReport {
  const r: FansReport = {
    cmd: 'report',
    phases: Object.fromEntries([...phases].map(([name, p]) => [name, phaseReport(p)])),
    fans: fans.length,
    missingAll: 0,
    missingMatch: 0,
    notLive: 0,
    missingOnLive: 0,
    duplicates: 0,
    userReceived: 0,
    userExpected: 0,
    droppedFans: {},
    droppedComplete: {},
  };
  const names = new Map([...phases].map(([name, p]) => [p.id, name]));
  for (const f of fans) {
    const missingAll = Math.max(0, accepted.all - f.uniqueAll);
    const missingMatch = Math.max(0, (accepted.match[matchRoom(f.match)] ?? 0) - f.uniqueMatch);
    r.missingAll += missingAll;
    r.missingMatch += missingMatch;
    if (f.state === 'live') r.missingOnLive += missingAll + missingMatch;
    else r.notLive++;
    r.duplicates += f.duplicates;
    r.userReceived += f.userReceived;
    r.userExpected += accepted.user[`user:${userId(f.n)}`] ?? 0;
    for (const id of f.droppedIn) {
      const name = names.get(id)!;
      r.droppedFans[name] = (r.droppedFans[name] ?? 0) + 1;
      if (missingAll + missingMatch === 0) r.droppedComplete[name] = (r.droppedComplete[name] ?? 0) + 1;
    }
  }
  return r;
}

process.on('message', async (msg: FansCommand) => {
  try {
    if (msg.cmd === 'open') {
      await open(msg);
      process.send!({ cmd: 'opened' });
    } else if (msg.cmd === 'status') process.send!(status());
    else if (msg.cmd === 'phase') {
      world.phase = new PhaseStats(phases.size);
      phases.set(msg.name, world.phase);
      process.send!({ cmd: 'phase' });
    } else if (msg.cmd === 'urls') {
      world.balancer.setUp(msg.urls);
      process.send!({ cmd: 'urls' });
    } else if (msg.cmd === 'report') process.send!(report(msg.accepted));
    else if (msg.cmd === 'close') {
      for (const f of fans) f.close();
      fans = [];
      process.send!({ cmd: 'closed' });
    }
  } catch (err) {
    process.send!({ cmd: 'error', message: (err as Error).stack ?? String(err) });
  }
});

process.on('disconnect', () => process.exit(0));
process.send!({ cmd: 'ready' });
