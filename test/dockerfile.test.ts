import assert from 'node:assert/strict';
import { execFileSync, execSync, spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { DockerfileParser } from 'dockerfile-ast';
import { validate } from 'dockerfile-utils';
import { freePort } from './helpers/ports.js';
import { needs, toolPath } from './helpers/tools.js';
import { onceWithin, waitFor } from './helpers/wait.js';
import { owned } from './helpers/children.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const DOCKERFILE = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');

interface Step {
  keyword: string;
  args: string;
  flags: Record<string, string>;
}
interface Stage {
  name: string;
  steps: Step[];
}

function stages(): Stage[] {
  const out: Stage[] = [];
  for (const ins of DockerfileParser.parse(DOCKERFILE).getInstructions()) {
    const keyword = ins.getKeyword();
    const args = ins.getArgumentsContent() ?? '';
    const flags = Object.fromEntries(
      ('getFlags' in ins ? (ins as unknown as { getFlags(): { getName(): string; getValue(): string | null }[] }).getFlags() : []).map(
        (f) => [f.getName(), f.getValue() ?? ''],
      ),
    );
    if (keyword === 'FROM') out.push({ name: / AS (\S+)$/i.exec(args)?.[1] ?? String(out.length), steps: [] });
    else out.at(-1)!.steps.push({ keyword, args, flags });
  }
  return out;
}

/** COPY's rule: a destination ending in `/` is a directory that receives the file by its name. */
function dockerCopy(src: string, root: string, dest: string): void {
  const target = dest.endsWith('/') && !statSync(src).isDirectory() ? join(root, dest, basename(src)) : join(root, dest);
  cpSync(src, target, { recursive: true });
}

const only = (stage: Stage, keyword: string) => stage.steps.filter((s) => s.keyword === keyword);
const jsonArgs = (s: Step) => JSON.parse(s.args.replace(/^CMD\s+/, '')) as string[];

/**
 * No Docker engine runs here, so this rehearses the image: the build stage's COPY and RUN steps run
 * as written in a scratch directory, the runtime stage's files are assembled from it, and the
 * runtime's ENTRYPOINT + CMD start as PID 1 of a new PID namespace with the image's ENV. What cannot
 * be rehearsed (the base image, USER, apt-get in the image) is checked statically below.
 */
describe('Dockerfile', () => {
  const all = stages();
  const build = all[0]!;
  const runtime = all.at(-1)!;
  const work = mkdtempSync(join(tmpdir(), 'herald-image-'));
  const buildDir = join(work, 'build');
  const imageDir = join(work, 'image');

  before(() => {
    mkdirSync(buildDir);
    mkdirSync(imageDir);
    for (const step of build.steps) {
      if (step.keyword === 'COPY') {
        const parts = step.args.split(/\s+/);
        const dest = parts.pop()!;
        for (const src of parts) dockerCopy(join(ROOT, src), buildDir, dest);
      } else if (step.keyword === 'RUN') {
        execSync(step.args, { cwd: buildDir, stdio: 'pipe', shell: '/bin/sh', env: process.env });
      }
    }
    const workdir = only(runtime, 'WORKDIR')[0]!.args;
    for (const step of only(runtime, 'COPY')) {
      const [src, dest] = step.args.split(/\s+/) as [string, string];
      const from = step.flags.from ? join(buildDir, src.replace(`${workdir}/`, '')) : join(ROOT, src);
      dockerCopy(from, imageDir, dest);
    }
  });

  after(() => rmSync(work, { recursive: true, force: true }));

  it('passes dockerfile-utils lint with no problems', () => {
    assert.deepEqual(validate(DOCKERFILE), []);
  });

  it('is multi-stage on Debian Node 20, runs as a non-root user, exposes the port it sets', () => {
    const froms = [...DOCKERFILE.matchAll(/^FROM (\S+)/gm)].map((m) => m[1]);
    assert.ok(froms.length >= 2, 'multi-stage');
    for (const f of froms) assert.match(f!, /^node:20-bookworm/, 'Debian (glibc) Node 20 base');
    const user = only(runtime, 'USER')[0]?.args;
    assert.ok(user && user !== 'root' && user !== '0', 'USER is not root');
    const env = only(runtime, 'ENV').map((s) => s.args).join(' ');
    assert.match(env, /PORT=3000/);
    assert.equal(only(runtime, 'EXPOSE')[0]?.args, '3000');
    assert.equal(only(runtime, 'STOPSIGNAL')[0]?.args, 'SIGTERM');
    for (const run of only(runtime, 'RUN')) {
      assert.match(run.args, /^apt-get update\s+&& apt-get install -y --no-install-recommends [\w -]+&& rm -rf \/var\/lib\/apt\/lists\/\*(\s+&& ln -s \S+ \/usr\/local\/bin\/herald)?$/);
    }
  });

  it('runs node as `npm start` does, with the same flags', () => {
    const start = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: { start: string } }).scripts.start;
    assert.deepEqual(jsonArgs(only(runtime, 'CMD')[0]!), start.split(' '));
  });

  it('puts the herald command on PATH, and it runs from the image\'s files', () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { bin: { herald: string }; version: string };
    const workdir = only(runtime, 'WORKDIR')[0]!.args;
    const link = /&& ln -s (\S+) \/usr\/local\/bin\/herald$/.exec(only(runtime, 'RUN').map((r) => r.args).join('\n'))?.[1];
    assert.equal(link, `${workdir}/${pkg.bin.herald}`, 'the symlink points at package.json\'s bin in the image');
    const script = join(imageDir, pkg.bin.herald);
    assert.ok((statSync(script).mode & 0o111) !== 0, 'executable: the build stage sets the bit tsc does not');
    // The image's PATH has /usr/local/bin; here a scratch directory holds the same symlink.
    const bin = mkdtempSync(join(work, 'bin-'));
    symlinkSync(script, join(bin, 'herald'));
    const env: Record<string, string> = { PATH: `${bin}:${process.env.PATH!}` };
    for (const step of only(runtime, 'ENV')) {
      for (const m of step.args.matchAll(/(\w+)=(\S+)/g)) env[m[1]!] = m[2]!;
    }
    const run = (args: string[], extra: Record<string, string> = {}) =>
      spawnSync('herald', args, { cwd: imageDir, env: { ...env, ...extra }, encoding: 'utf8' });
    assert.equal(run(['--version']).stdout, `${pkg.version}\n`);
    // NODE_ENV=production from the image demands keys: what `docker run -e ...` must pass (docs/reference/deploy.md, Docker).
    const bare = run(['check', '--json']);
    assert.equal(bare.status, 1);
    const report = JSON.parse(bare.stdout) as { errors: { setting: string }[] };
    assert.deepEqual(report.errors.map((e) => e.setting).sort(), ['JWT_SECRET', 'PUBLISH_KEYS']);
    const keys = { PUBLISH_KEYS: run(['keygen']).stdout.trim(), JWT_SECRET: run(['keygen']).stdout.trim() };
    assert.equal(run(['check'], keys).status, 0);
    // docs/reference/deploy.md's `docker run … herald token`: the token key alone is enough for a token.
    assert.match(run(['token', '--sub', 'alice'], { JWT_SECRET: keys.JWT_SECRET }).stdout, /^ey[\w-]+\.[\w-]+\.[\w-]+\n$/);
  });

  it("ships production dependencies only, and only this platform's uWebSockets.js binary", () => {
    const modules = readdirSync(join(imageDir, 'node_modules'));
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { dependencies: object };
    // The lockfile marks packages only development needs; none of them may be in the image.
    const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean }> };
    const devOnly = Object.entries(lock.packages).filter(([path, p]) => path && p.dev).map(([path]) => path);
    assert.ok(devOnly.includes('node_modules/typescript'));
    const shipped = devOnly.filter((path) => existsSync(join(imageDir, path)));
    assert.deepEqual(shipped, [], 'development-only packages in the image');
    for (const dep of Object.keys(pkg.dependencies)) assert.ok(existsSync(join(imageDir, 'node_modules', dep)), `${dep} is in the image`);
    const binaries = readdirSync(join(imageDir, 'node_modules/uWebSockets.js/binaries'));
    assert.deepEqual(binaries, [`uws_${process.platform}_${process.arch}_${process.versions.modules}.node`]);
    const size = execFileSync('du', ['-sh', imageDir], { encoding: 'utf8' }).split('\t')[0];
    console.log(`# image /app: ${size} (${modules.length} packages)`);
  });

  it('starts as PID 1 under its ENTRYPOINT, passes its HEALTHCHECK, and drains and exits 0 on SIGTERM', { skip: needs('tini') }, async () => {
    const entry = [...jsonArgs(only(runtime, 'ENTRYPOINT')[0]!), ...jsonArgs(only(runtime, 'CMD')[0]!)];
    // The image runs Debian's tini from /usr/bin; here it runs from wherever PATH has it.
    assert.equal(entry[0], '/usr/bin/tini');
    entry[0] = toolPath('tini');
    const env: Record<string, string> = { PATH: process.env.PATH! };
    for (const step of only(runtime, 'ENV')) {
      for (const m of step.args.matchAll(/(\w+)=(\S+)/g)) env[m[1]!] = m[2]!;
    }
    // Compose and Kubernetes set these; NODE_ENV=production from the image demands keys.
    Object.assign(env, {
      PORT: String(await freePort()),
      PUBLISH_KEYS: 'image-test-key-0123456789',
      JWT_SECRET: 'image-test-jwt-secret-0123456789abcdef',
      DRAIN_SECONDS: '1',
    });

    const child = owned(spawn(toolPath('unshare'), ['--pid', '--fork', '--kill-child', '--', ...entry], { cwd: imageDir, env, stdio: ['ignore', 'pipe', 'pipe'] }));
    const lines: string[] = [];
    createInterface({ input: child.stdout! }).on('line', (l) => lines.push(l));
    let stderr = '';
    child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
    try {
      await waitFor('the image to listen', () => {
        if (child.exitCode !== null) throw new Error(`exited ${child.exitCode}: ${stderr}`);
        return lines.some((l) => l.includes('"listening"'));
      });
      const listening = JSON.parse(lines.find((l) => l.includes('"listening"'))!) as { transport: string; port: number };
      assert.equal(listening.transport, 'uws', 'the native uWebSockets.js binary loads from the pruned image');
      assert.equal(String(listening.port), env.PORT);

      const healthcheck = jsonArgs(only(runtime, 'HEALTHCHECK')[0]!);
      execFileSync(healthcheck[0]!, healthcheck.slice(1), { env, stdio: 'pipe' });

      // PID 1 inside the namespace is the ENTRYPOINT (tini); signal it as `docker stop` would.
      const pid1 = Number(readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, 'utf8').trim().split(' ')[0]);
      assert.equal(readFileSync(`/proc/${pid1}/status`, 'utf8').match(/^NSpid:\s+\d+\s+(\d+)/m)?.[1], '1', 'the entrypoint runs as PID 1');
      process.kill(pid1, 'SIGTERM');
      const [code] = await onceWithin<[number | null]>(child, 'exit', 'the image to exit after SIGTERM');
      assert.equal(code, 0);
      assert.ok(lines.some((l) => l.includes('"drained"')), 'node received SIGTERM through tini and drained');
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });
});
