import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { copyCharts } from './support/chart-copy';
import { helm } from '../tools/helm.cjs';
import { buildDurationRules, buildSchemas, render, SERVICES } from '../tools/schemas.cjs';
import { documentedIn } from './support/env-example';

/**
 * The Helm charts, with the real helm v4 binary: lint, render with default and non-trivial
 * values, reject bad values through values.schema.json, and check every rendered manifest
 * against the Kubernetes API schemas (kubernetes-models) and against what the services need.
 */
const root = path.resolve(__dirname, '../..');
const PORTS: Record<string, number> = { gateway: 8080, queue: 8081, streamer: 8082, collector: 8083 };
const SERVICE_CHARTS = Object.keys(PORTS);

interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  spec?: any;
  stringData?: Record<string, string>;
}
interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: {
    secretKeyRef?: { name: string; key: string; optional?: boolean };
    fieldRef?: { fieldPath: string };
  };
}
/** The backends: closed to all but the release's pods and Prometheus. */
const BACKENDS = ['queue', 'streamer', 'collector'];
/** Prometheus pods in any namespace: the default peers for /metrics. */
const PROMETHEUS = {
  namespaceSelector: {},
  podSelector: { matchLabels: { 'app.kubernetes.io/name': 'prometheus' } },
};
/** The gpu-telemetry pods of release gt. */
const RELEASE_PODS = {
  podSelector: {
    matchLabels: { 'app.kubernetes.io/instance': 'gt', 'app.kubernetes.io/part-of': 'gpu-telemetry' },
  },
};

let helmDir: string;

beforeAll(() => {
  helmDir = copyCharts('gt-helm-');
}, 120_000);

afterAll(() => rmSync(helmDir, { recursive: true, force: true }));

function valuesFile(values: unknown): string {
  const file = path.join(helmDir, `values-${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(file, JSON.stringify(values));
  return file;
}

function template(chart: string, values: unknown = {}, extra: string[] = []) {
  return helm([
    'template',
    'gt',
    path.join(helmDir, chart),
    '--namespace',
    'telemetry',
    '-f',
    valuesFile(values),
    ...extra,
  ]);
}

function render$(chart: string, values: unknown = {}): Manifest[] {
  const result = template(chart, values);
  if (result.status !== 0) throw new Error(`helm template ${chart} failed:\n${result.stderr}`);
  return parseAllDocuments(result.stdout, { uniqueKeys: true })
    .map((doc) => {
      if (doc.errors.length) throw new Error(doc.errors.join('\n'));
      return doc.toJS() as Manifest | null;
    })
    .filter((m): m is Manifest => m !== null);
}

const find = (manifests: Manifest[], kind: string, name: string) => {
  const found = manifests.find((m) => m.kind === kind && m.metadata.name === name);
  if (!found)
    throw new Error(
      `no ${kind} ${name} in ${manifests.map((m) => `${m.kind}/${m.metadata.name}`).join(', ')}`,
    );
  return found;
};

const containerOf = (workload: Manifest) => workload.spec.template.spec.containers[0];
const workloads = (manifests: Manifest[]) =>
  manifests.filter((m) => m.kind === 'Deployment' || m.kind === 'StatefulSet');
const workloadOf = (manifests: Manifest[], name: string) => {
  const found = workloads(manifests).find((m) => m.metadata.name === `gt-${name}`);
  if (!found) throw new Error(`no workload gt-${name}`);
  return found;
};
/** Whether a pod template carries every label of a selector. */
const selects = (matchLabels: Record<string, string>, workload: Manifest) =>
  Object.entries(matchLabels).every(([k, v]) => workload.spec.template.metadata.labels[k] === v);
const envOf = (workload: Manifest): Record<string, EnvVar> =>
  Object.fromEntries((containerOf(workload).env as EnvVar[]).map((e) => [e.name, e]));

/** Validates a manifest with the kubernetes-models class of its apiVersion and kind. */
function validateAgainstKubernetes(manifest: Manifest): void {
  if (manifest.kind === 'ServiceMonitor') {
    // A CRD: check the fields the Prometheus Operator requires.
    expect(manifest.apiVersion).toBe('monitoring.coreos.com/v1');
    expect(manifest.spec.selector.matchLabels).toBeDefined();
    expect(manifest.spec.endpoints[0]).toMatchObject({ port: 'http', path: '/metrics' });
    return;
  }
  const modulePath = manifest.apiVersion.includes('/') ? manifest.apiVersion : `v1`;
  const models = require(`kubernetes-models/${modulePath}`) as Record<
    string,
    new (m: unknown) => { validate(): void }
  >;
  const Model = models[manifest.kind];
  if (!Model) throw new Error(`unknown kind ${manifest.apiVersion} ${manifest.kind}`);
  try {
    new Model(manifest).validate();
  } catch (error) {
    throw new Error(`${manifest.kind}/${manifest.metadata.name}: ${(error as Error).message}`);
  }
}

describe('helm lint', () => {
  it.each(['gpu-telemetry', ...SERVICE_CHARTS])('passes --strict for the %s chart', (chart) => {
    const result = helm(['lint', '--strict', path.join(helmDir, chart)]);
    expect(result.stderr + result.stdout).toContain('0 chart(s) failed');
    expect(result.status).toBe(0);
  });
});

describe('the gpu-telemetry chart with default values', () => {
  let manifests: Manifest[];
  beforeAll(() => {
    manifests = render$('gpu-telemetry');
  });

  it('renders only valid Kubernetes objects', () => {
    expect(manifests.length).toBeGreaterThan(10);
    for (const manifest of manifests) validateAgainstKubernetes(manifest);
  });

  it('installs the four services, the collector as a StatefulSet, and a migration hook Job', () => {
    const kinds = manifests.map((m) => `${m.kind}/${m.metadata.name}`).sort();
    expect(kinds).toEqual(
      expect.arrayContaining([
        'Deployment/gt-gateway',
        'Deployment/gt-queue',
        'Deployment/gt-streamer',
        'StatefulSet/gt-collector',
        'Service/gt-gateway',
        'Service/gt-queue',
        'Service/gt-streamer',
        'Service/gt-collector',
        'Service/gt-collector-headless',
        'Job/gt-migrate',
        'PodDisruptionBudget/gt-queue',
        'ServiceAccount/gt-queue',
        'Secret/gt-gateway-admin-key',
        'Secret/gt-service-token',
        'NetworkPolicy/gt-gateway',
        'NetworkPolicy/gt-queue',
        'NetworkPolicy/gt-streamer',
        'NetworkPolicy/gt-collector',
      ]),
    );
    expect(
      kinds.filter((k) => k.startsWith('HorizontalPodAutoscaler/') || k.startsWith('ServiceMonitor/')),
    ).toEqual([]);
  });

  it.each(SERVICE_CHARTS)(
    'runs %s from the one image, probed on /healthz and /readyz, locked down',
    (name) => {
      const workload = manifests.find(
        (m) => m.metadata.name === `gt-${name}` && /Deployment|StatefulSet/.test(m.kind),
      );
      const container = containerOf(workload!);
      expect(container.image).toBe('ghcr.io/gpu-telemetry/gpu-telemetry:0.1.0');
      expect(container.args).toEqual([name]);
      expect(container.ports).toEqual([{ name: 'http', containerPort: PORTS[name], protocol: 'TCP' }]);
      expect(envOf(workload!)['PORT']?.value).toBe(String(PORTS[name]));
      // No HOST: the service listens on every address, so IPv6-only and dual-stack clusters reach it.
      expect(envOf(workload!)['HOST']).toBeUndefined();
      expect(container.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'http' });
      expect(container.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'http' });
      // Serving on for 5 s after it is told to stop, then SHUTDOWN_TIMEOUT (10 s) and 10 s more at
      // most: all within the grace period.
      expect(container.lifecycle.preStop.exec.command).toEqual(['sleep', '5']);
      expect(workload!.spec.template.spec.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(5 + 10 + 10);
      expect(container.resources.requests).toMatchObject({
        cpu: expect.any(String),
        memory: expect.any(String),
      });
      expect(container.resources.limits.memory).toEqual(expect.any(String));
      expect(container.securityContext).toMatchObject({
        readOnlyRootFilesystem: true,
        allowPrivilegeEscalation: false,
        capabilities: { drop: ['ALL'] },
      });
      expect(workload!.spec.template.spec.securityContext).toMatchObject({
        runAsNonRoot: true,
        runAsUser: 1000,
      });
      // Services select their own pods only, on the named port.
      const service = find(manifests, 'Service', `gt-${name}`);
      expect(service.spec.selector).toEqual(workload!.spec.selector.matchLabels);
      expect(service.spec.ports[0]).toMatchObject({ port: PORTS[name], targetPort: 'http' });
      // DATABASE_URL from the conventional Secret until one is configured.
      expect(envOf(workload!)['DATABASE_URL']?.valueFrom?.secretKeyRef).toEqual({
        name: 'gpu-telemetry-database',
        key: 'DATABASE_URL',
      });
    },
  );

  it('wires the services to each other through their Services, and sends spans to the gateway', () => {
    const gatewayEnv = envOf(find(manifests, 'Deployment', 'gt-gateway'));
    expect(gatewayEnv['GATEWAY_STREAMER_URLS']?.value).toBe('http://gt-streamer:8082');
    expect(gatewayEnv['GATEWAY_QUEUE_URLS']?.value).toBe('http://gt-queue:8081');
    expect(gatewayEnv['GATEWAY_COLLECTOR_URLS']?.value).toBe('http://gt-collector:8083');
    expect(gatewayEnv['GATEWAY_ADMIN_KEY']?.valueFrom?.secretKeyRef).toEqual({
      name: 'gt-gateway-admin-key',
      key: 'GATEWAY_ADMIN_KEY',
    });
    const adminKey = find(manifests, 'Secret', 'gt-gateway-admin-key').stringData?.['GATEWAY_ADMIN_KEY'];
    expect(adminKey).toMatch(/^[A-Za-z0-9]{40}$/);
    expect(envOf(find(manifests, 'Deployment', 'gt-streamer'))['QUEUE_URL']?.value).toBe(
      'http://gt-queue:8081',
    );
    expect(envOf(find(manifests, 'StatefulSet', 'gt-collector'))['QUEUE_URL']?.value).toBe(
      'http://gt-queue:8081',
    );
    // Spans go with the gateway's span-export key, generated once into a Secret the gateway reads too.
    const otlpKey = find(manifests, 'Secret', 'gt-gateway-otlp-key').stringData?.['GATEWAY_OTLP_KEY'];
    expect(otlpKey).toMatch(/^[A-Za-z0-9]{40}$/);
    expect(otlpKey).not.toBe(adminKey);
    expect(gatewayEnv['GATEWAY_OTLP_KEY']?.valueFrom?.secretKeyRef).toEqual({
      name: 'gt-gateway-otlp-key',
      key: 'GATEWAY_OTLP_KEY',
    });
    for (const name of SERVICE_CHARTS) {
      const workload = manifests.find((m) => m.metadata.name === `gt-${name}` && m.spec?.template);
      const env = envOf(workload!);
      expect(env['OTEL_EXPORTER_OTLP_ENDPOINT']?.value).toBe('http://gt-gateway:8080');
      expect(env['OTLP_KEY']?.valueFrom?.secretKeyRef).toMatchObject({
        name: 'gt-gateway-otlp-key',
        key: 'GATEWAY_OTLP_KEY',
      });
      // Kubernetes expands $(OTLP_KEY) because OTLP_KEY comes earlier in the list.
      const names = (containerOf(workload!).env as EnvVar[]).map((e) => e.name);
      expect(names.indexOf('OTLP_KEY')).toBeLessThan(names.indexOf('OTEL_EXPORTER_OTLP_HEADERS'));
      expect(env['OTEL_EXPORTER_OTLP_HEADERS']?.value).toBe('authorization=Bearer%20$(OTLP_KEY)');
    }
  });

  it('generates one service token Secret, kept across upgrades, that every workload reads', () => {
    const secrets = manifests.filter((m) => m.kind === 'Secret' && m.metadata.name === 'gt-service-token');
    expect(secrets).toHaveLength(1);
    const [secret] = secrets;
    expect(secret?.stringData).toEqual({ SERVICE_TOKEN: expect.stringMatching(/^[A-Za-z0-9]{40}$/) });
    expect(secret?.metadata.annotations?.['helm.sh/resource-policy']).toBe('keep');
    expect(workloads(manifests)).toHaveLength(4);
    for (const workload of workloads(manifests)) {
      const env = envOf(workload);
      expect(env['SERVICE_TOKEN']?.valueFrom?.secretKeyRef).toEqual({
        name: 'gt-service-token',
        key: 'SERVICE_TOKEN',
      });
      // Set in the Secret only during a rotation.
      expect(env['SERVICE_TOKEN_PREVIOUS']?.valueFrom?.secretKeyRef).toEqual({
        name: 'gt-service-token',
        key: 'SERVICE_TOKEN_PREVIOUS',
        optional: true,
      });
    }
    // Migrations read DATABASE_URL alone.
    expect(Object.keys(envOf(find(manifests, 'Job', 'gt-migrate')))).toEqual(['DATABASE_URL']);
  });

  it.each(BACKENDS)(
    "lets into %s only this release's pods and Prometheus, on its port, and restricts no egress",
    (name) => {
      const policy = find(manifests, 'NetworkPolicy', `gt-${name}`);
      const workload = workloadOf(manifests, name);
      expect(policy.spec.podSelector.matchLabels).toEqual(workload.spec.selector.matchLabels);
      expect(policy.spec.policyTypes).toEqual(['Ingress']);
      expect(policy.spec.ingress).toEqual([
        { ports: [{ port: PORTS[name], protocol: 'TCP' }], from: [RELEASE_PODS, PROMETHEUS] },
      ]);
      // Every service of the release is such a pod; the migration Job is not, and needs no way in.
      for (const client of workloads(manifests))
        expect(`${client.metadata.name}: ${selects(RELEASE_PODS.podSelector.matchLabels, client)}`).toBe(
          `${client.metadata.name}: true`,
        );
      expect(
        find(manifests, 'Job', 'gt-migrate').spec.template.metadata.labels['app.kubernetes.io/part-of'],
      ).toBeUndefined();
    },
  );

  it('lets anyone reach the gateway, the front door, on its port alone', () => {
    const policy = find(manifests, 'NetworkPolicy', 'gt-gateway');
    expect(policy.spec.podSelector.matchLabels).toEqual(
      workloadOf(manifests, 'gateway').spec.selector.matchLabels,
    );
    expect(policy.spec.policyTypes).toEqual(['Ingress']);
    expect(policy.spec.ingress).toEqual([{ ports: [{ port: 8080, protocol: 'TCP' }] }]);
  });

  it('migrates before install and upgrade, from the same image, with the same database Secret', () => {
    const job = find(manifests, 'Job', 'gt-migrate');
    expect(job.metadata.annotations?.['helm.sh/hook']).toBe('pre-install,pre-upgrade');
    const container = containerOf(job);
    expect(container.args).toEqual(['migrate', 'up']);
    expect(container.image).toBe('ghcr.io/gpu-telemetry/gpu-telemetry:0.1.0');
    expect(envOf(job)['DATABASE_URL']?.valueFrom?.secretKeyRef?.name).toBe('gpu-telemetry-database');
    expect(job.spec.template.spec.restartPolicy).toBe('Never');
  });

  it('gives the collector one replica that owns every target', () => {
    const collector = find(manifests, 'StatefulSet', 'gt-collector');
    expect(collector.spec.serviceName).toBe('gt-collector-headless');
    expect(envOf(collector)['COLLECTOR_REPLICAS']?.value).toBe('1');
    expect(envOf(collector)['HOSTNAME']?.valueFrom?.fieldRef?.fieldPath).toBe('metadata.name');
  });
});

describe('the gpu-telemetry chart with non-trivial values', () => {
  const values = {
    global: {
      image: { repository: 'registry.example.com/gt', tag: '1.2.3', pullPolicy: 'Always' },
      imagePullSecrets: ['regcred'],
      database: { url: 'postgres://gt:secret@db.example.com:5432/gt' },
      tracing: { enabled: true, samplerRatio: 0.25 },
    },
    gateway: {
      autoscaling: { enabled: true, minReplicas: 3, maxReplicas: 12, targetCPUUtilizationPercentage: 60 },
      serviceMonitor: { enabled: true, labels: { release: 'prometheus' } },
      ingress: {
        enabled: true,
        className: 'nginx',
        hosts: [{ host: 'telemetry.example.com' }],
        tls: [{ secretName: 'tls', hosts: ['telemetry.example.com'] }],
      },
      adminKey: { existingSecret: 'my-admin-key', secretKey: 'key' },
      config: { GATEWAY_RATE_LIMIT: 50, GATEWAY_AUTH: true, GATEWAY_TIMEOUT: '45s' },
      service: { type: 'LoadBalancer' },
    },
    queue: {
      replicaCount: 4,
      config: { QUEUE_MAX_ATTEMPTS: 10 },
      podDisruptionBudget: { enabled: true, minAvailable: 2 },
    },
    streamer: { enabled: false },
    collector: {
      replicaCount: 3,
      dcgmExporter: {
        targets: ['http://gpu-node-{1..8}:9400/metrics'],
        dns: ['http://dcgm.gpu.svc:9400/metrics'],
        headlessService: {
          enabled: true,
          namespace: 'gpu-operator',
          selector: { app: 'dcgm' },
          port: 9400,
          path: '/metrics',
        },
      },
      config: { COLLECT_INTERVAL: '15s' },
      extraEnv: [{ name: 'EXTRA', value: 'yes' }],
    },
  };
  let manifests: Manifest[];
  beforeAll(() => {
    manifests = render$('gpu-telemetry', values);
  });

  it('renders only valid Kubernetes objects', () => {
    for (const manifest of manifests) validateAgainstKubernetes(manifest);
  });

  it('puts the database URL in one Secret, created before the migration Job, read by every service', () => {
    const secret = find(manifests, 'Secret', 'gt-database');
    expect(secret.stringData).toEqual({ DATABASE_URL: 'postgres://gt:secret@db.example.com:5432/gt' });
    expect(secret.metadata.annotations?.['helm.sh/hook']).toBe('pre-install,pre-upgrade');
    expect(Number(secret.metadata.annotations?.['helm.sh/hook-weight'])).toBeLessThan(
      Number(find(manifests, 'Job', 'gt-migrate').metadata.annotations?.['helm.sh/hook-weight']),
    );
    for (const workload of manifests.filter((m) => m.spec?.template)) {
      expect(envOf(workload)['DATABASE_URL']?.valueFrom?.secretKeyRef?.name).toBe('gt-database');
      expect(containerOf(workload).image).toBe('registry.example.com/gt:1.2.3');
      expect(containerOf(workload).imagePullPolicy).toBe('Always');
      expect(workload.spec.template.spec.imagePullSecrets).toEqual([{ name: 'regcred' }]);
    }
  });

  it('autoscales the gateway instead of fixing its replicas, and exposes it through an Ingress', () => {
    const gateway = find(manifests, 'Deployment', 'gt-gateway');
    expect(gateway.spec.replicas).toBeUndefined();
    const hpa = find(manifests, 'HorizontalPodAutoscaler', 'gt-gateway');
    expect(hpa.spec).toMatchObject({
      scaleTargetRef: { kind: 'Deployment', name: 'gt-gateway' },
      minReplicas: 3,
      maxReplicas: 12,
    });
    expect(hpa.spec.metrics[0].resource.target.averageUtilization).toBe(60);
    const ingress = find(manifests, 'Ingress', 'gt-gateway');
    expect(ingress.spec.rules[0].host).toBe('telemetry.example.com');
    expect(ingress.spec.rules[0].http.paths[0].backend.service).toEqual({
      name: 'gt-gateway',
      port: { name: 'http' },
    });
    expect(find(manifests, 'ServiceMonitor', 'gt-gateway').metadata.labels?.['release']).toBe('prometheus');
    expect(find(manifests, 'Service', 'gt-gateway').spec.type).toBe('LoadBalancer');
  });

  it('passes config values to the env, and takes the admin key from the named Secret', () => {
    const env = envOf(find(manifests, 'Deployment', 'gt-gateway'));
    expect(env['GATEWAY_RATE_LIMIT']?.value).toBe('50');
    expect(env['GATEWAY_AUTH']?.value).toBe('true');
    expect(env['GATEWAY_TIMEOUT']?.value).toBe('45s');
    expect(env['GATEWAY_ADMIN_KEY']?.valueFrom?.secretKeyRef).toEqual({ name: 'my-admin-key', key: 'key' });
    expect(manifests.some((m) => m.metadata.name === 'gt-gateway-admin-key')).toBe(false);
    expect(env['OTEL_TRACES_SAMPLER_ARG']?.value).toBe('0.25');
    expect(envOf(find(manifests, 'Deployment', 'gt-queue'))['QUEUE_MAX_ATTEMPTS']?.value).toBe('10');
    expect(find(manifests, 'Deployment', 'gt-queue').spec.replicas).toBe(4);
    expect(find(manifests, 'PodDisruptionBudget', 'gt-queue').spec.minAvailable).toBe(2);
  });

  it('leaves out a disabled service', () => {
    expect(manifests.filter((m) => m.metadata.name.startsWith('gt-streamer'))).toEqual([]);
  });

  it('splits the targets over three collector replicas, and scrapes every dcgm-exporter pod behind a headless Service', () => {
    const collector = find(manifests, 'StatefulSet', 'gt-collector');
    const env = envOf(collector);
    expect(collector.spec.replicas).toBe(3);
    expect(env['COLLECTOR_REPLICAS']?.value).toBe('3');
    expect(env['COLLECT_TARGETS']?.value).toBe('http://gpu-node-{1..8}:9400/metrics');
    expect(env['COLLECT_DNS']?.value).toBe(
      'http://dcgm.gpu.svc:9400/metrics,http://gt-collector-dcgm-exporter.gpu-operator.svc:9400/metrics',
    );
    expect(env['COLLECT_INTERVAL']?.value).toBe('15s');
    expect(env['EXTRA']?.value).toBe('yes');
    const exporters = find(manifests, 'Service', 'gt-collector-dcgm-exporter');
    expect(exporters.metadata.namespace).toBe('gpu-operator');
    expect(exporters.spec).toMatchObject({
      clusterIP: 'None',
      selector: { app: 'dcgm' },
      ports: [{ port: 9400 }],
    });
  });
});

describe('tracing settings', () => {
  it('turns span export off, or sends spans elsewhere without the gateway key', () => {
    const off = render$('gpu-telemetry', { global: { tracing: { enabled: false } } });
    const queueOff = envOf(find(off, 'Deployment', 'gt-queue'));
    expect(queueOff['OTEL_TRACES_EXPORTER']?.value).toBe('none');
    expect(queueOff['OTEL_EXPORTER_OTLP_ENDPOINT']).toBeUndefined();
    expect(queueOff['OTEL_EXPORTER_OTLP_HEADERS']).toBeUndefined();
    const elsewhere = render$('gpu-telemetry', {
      global: { tracing: { enabled: true, endpoint: 'http://otel-collector.observability:4318' } },
    });
    const queueElsewhere = envOf(find(elsewhere, 'Deployment', 'gt-queue'));
    expect(queueElsewhere['OTEL_EXPORTER_OTLP_ENDPOINT']?.value).toBe(
      'http://otel-collector.observability:4318',
    );
    expect(queueElsewhere['OTLP_KEY']).toBeUndefined();
    expect(queueElsewhere['OTEL_EXPORTER_OTLP_HEADERS']).toBeUndefined();
  });

  it('refuses to send spans to a disabled gateway, and takes an endpoint or span export off instead', () => {
    const nowhere = template('gpu-telemetry', { gateway: { enabled: false } });
    expect(nowhere.status).not.toBe(0);
    expect(nowhere.stderr).toContain(
      'global.tracing: spans go to the gateway, which is disabled; name your OTLP endpoint (global.tracing.endpoint, or queue.tracing.endpoint)',
    );
    // Each service that still has no endpoint is named: here the queue has one, the streamer not.
    const partly = template('gpu-telemetry', {
      gateway: { enabled: false },
      queue: { tracing: { endpoint: 'http://otel.observability:4318' } },
    });
    expect(partly.stderr).toContain('or streamer.tracing.endpoint');
    const elsewhere = render$('gpu-telemetry', {
      gateway: { enabled: false },
      global: { tracing: { endpoint: 'http://otel.observability:4318' } },
    });
    expect(envOf(find(elsewhere, 'Deployment', 'gt-queue'))['OTEL_EXPORTER_OTLP_ENDPOINT']?.value).toBe(
      'http://otel.observability:4318',
    );
    expect(elsewhere.some((m) => m.metadata.name === 'gt-gateway')).toBe(false);
    const off = render$('gpu-telemetry', {
      gateway: { enabled: false },
      global: { tracing: { enabled: false } },
    });
    expect(envOf(find(off, 'Deployment', 'gt-streamer'))['OTEL_TRACES_EXPORTER']?.value).toBe('none');
  });
});

describe('network policy settings', () => {
  const policies = (manifests: Manifest[]) =>
    manifests.filter((m) => m.kind === 'NetworkPolicy').map((m) => m.metadata.name);

  it('turns every NetworkPolicy off with the global switch, or one with its chart', () => {
    expect(policies(render$('gpu-telemetry', { global: { networkPolicy: { enabled: false } } }))).toEqual([]);
    expect(
      policies(render$('gpu-telemetry', { queue: { networkPolicy: { enabled: false } } })).sort(),
    ).toEqual(['gt-collector', 'gt-gateway', 'gt-streamer']);
  });

  it('takes the Prometheus peers from global, a chart, and more peers from ingressFrom', () => {
    const monitoring = {
      namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } },
      podSelector: { matchLabels: { app: 'vmagent' } },
    };
    const controller = {
      namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'ingress-nginx' } },
    };
    const debug = { ipBlock: { cidr: '10.0.0.0/8', except: ['10.1.0.0/16'] } };
    const manifests = render$('gpu-telemetry', {
      global: { networkPolicy: { metricsFrom: [monitoring] } },
      gateway: { networkPolicy: { ingressFrom: [controller] } },
      queue: { networkPolicy: { ingressFrom: [debug] } },
      streamer: { networkPolicy: { metricsFrom: [] } },
    });
    for (const manifest of manifests) validateAgainstKubernetes(manifest);
    const from = (name: string) => find(manifests, 'NetworkPolicy', `gt-${name}`).spec.ingress[0].from;
    // With ingressFrom, the gateway takes that, its release's spans and Prometheus.
    expect(from('gateway')).toEqual([RELEASE_PODS, monitoring, controller]);
    expect(from('queue')).toEqual([RELEASE_PODS, monitoring, debug]);
    expect(from('streamer')).toEqual([RELEASE_PODS]);
    expect(from('collector')).toEqual([RELEASE_PODS, monitoring]);
  });
});

describe('service token settings', () => {
  it('reads an existing Secret instead of generating one', () => {
    const manifests = render$('gpu-telemetry', { global: { serviceToken: { existingSecret: 'my-token' } } });
    expect(manifests.filter((m) => m.kind === 'Secret').map((m) => m.metadata.name)).not.toContain(
      'gt-service-token',
    );
    expect(workloads(manifests)).toHaveLength(4);
    for (const workload of workloads(manifests)) {
      expect(envOf(workload)['SERVICE_TOKEN']?.valueFrom?.secretKeyRef).toEqual({
        name: 'my-token',
        key: 'SERVICE_TOKEN',
      });
      expect(envOf(workload)['SERVICE_TOKEN_PREVIOUS']?.valueFrom?.secretKeyRef?.name).toBe('my-token');
    }
  });

  it.each(SERVICE_CHARTS)('generates the Secret for %s installed alone, or reads the one named', (chart) => {
    const alone = render$(chart);
    expect(find(alone, 'Secret', 'gt-service-token').stringData?.['SERVICE_TOKEN']).toMatch(
      /^[A-Za-z0-9]{40}$/,
    );
    expect(envOf(workloadOf(alone, chart))['SERVICE_TOKEN']?.valueFrom?.secretKeyRef?.name).toBe(
      'gt-service-token',
    );
    for (const values of [
      { serviceToken: { existingSecret: 'shared-token' } },
      { global: { serviceToken: { existingSecret: 'shared-token' } } },
    ]) {
      const named = render$(chart, values);
      expect(named.some((m) => m.metadata.name === 'gt-service-token')).toBe(false);
      expect(envOf(workloadOf(named, chart))['SERVICE_TOKEN']?.valueFrom?.secretKeyRef?.name).toBe(
        'shared-token',
      );
    }
  });
});

describe('service ports', () => {
  it('keeps each Service on its own port for the other services when service.port moves it', () => {
    const manifests = render$('gpu-telemetry', {
      gateway: { service: { type: 'LoadBalancer', port: 80 } },
      queue: { service: { port: 9000 } },
    });
    for (const manifest of manifests) validateAgainstKubernetes(manifest);
    const ports = (name: string) =>
      (find(manifests, 'Service', name).spec.ports as { name: string; port: number }[]).map((p) => [
        p.name,
        p.port,
      ]);
    expect(ports('gt-gateway')).toEqual([
      ['http', 80],
      ['internal', 8080],
    ]);
    expect(ports('gt-queue')).toEqual([
      ['http', 9000],
      ['internal', 8081],
    ]);
    expect(ports('gt-streamer')).toEqual([['http', 8082]]);
    expect(envOf(find(manifests, 'Deployment', 'gt-streamer'))['QUEUE_URL']?.value).toBe(
      'http://gt-queue:8081',
    );
    expect(envOf(find(manifests, 'Deployment', 'gt-streamer'))['OTEL_EXPORTER_OTLP_ENDPOINT']?.value).toBe(
      'http://gt-gateway:8080',
    );
  });
});

describe('values written into Secrets', () => {
  const checksums = (manifests: Manifest[]) =>
    Object.fromEntries(
      workloads(manifests).map((w) => [
        w.metadata.name,
        w.spec.template.metadata.annotations?.['checksum/secrets'] as string | undefined,
      ]),
    );

  it('rolls the pods that read a database URL or admin key written from values when it changes', () => {
    // A pod reads a Secret only when it starts: without a change to its template, the old URL stays.
    const before = checksums(
      render$('gpu-telemetry', { global: { database: { url: 'postgres://u:a@db/gt' } } }),
    );
    const after = checksums(
      render$('gpu-telemetry', { global: { database: { url: 'postgres://u:b@db/gt' } } }),
    );
    for (const name of SERVICE_CHARTS) {
      expect(before[`gt-${name}`]).toMatch(/^[0-9a-f]{16}$/);
      expect(after[`gt-${name}`]).toMatch(/^[0-9a-f]{16}$/);
      expect(after[`gt-${name}`]).not.toBe(before[`gt-${name}`]);
    }
    // A chart's own URL rolls that chart's pods alone.
    const own = checksums(render$('gpu-telemetry', { queue: { database: { url: 'postgres://u:q@db/gt' } } }));
    expect(Object.entries(own).filter(([, sum]) => sum)).toEqual([['gt-queue', expect.any(String)]]);
    const adminKey = (value: string) => checksums(render$('gateway', { adminKey: { value } }))['gt-gateway'];
    expect(adminKey('a'.repeat(24))).not.toBe(adminKey('b'.repeat(24)));
  });

  it('leaves the pod templates alone when the Secrets are your own or generated', () => {
    for (const values of [
      {},
      { global: { database: { url: 'postgres://u:a@db/gt', existingSecret: 'pg' } } },
      { gateway: { adminKey: { existingSecret: 'admin', value: 'a'.repeat(24) } } },
    ])
      expect(Object.values(checksums(render$('gpu-telemetry', values))).filter(Boolean)).toEqual([]);
  });
});

describe('the migration Job of a service chart on its own', () => {
  it.each(SERVICE_CHARTS)(
    "runs a pod that %s's Service, PodDisruptionBudget, NetworkPolicy and workload do not select",
    (chart) => {
      const manifests = render$(chart, { migrations: { enabled: true } });
      const job = find(manifests, 'Job', `gt-${chart}-migrate`);
      const labels: Record<string, string> = job.spec.template.metadata.labels;
      expect(labels).toMatchObject({
        'app.kubernetes.io/instance': 'gt',
        'app.kubernetes.io/component': 'migrate',
      });
      const matches = (selector: Record<string, string>) =>
        Object.entries(selector).every(([key, value]) => labels[key] === value);
      const selectors = {
        service: find(manifests, 'Service', `gt-${chart}`).spec.selector,
        pdb: find(manifests, 'PodDisruptionBudget', `gt-${chart}`).spec.selector.matchLabels,
        networkPolicy: find(manifests, 'NetworkPolicy', `gt-${chart}`).spec.podSelector.matchLabels,
        workload: workloadOf(manifests, chart).spec.selector.matchLabels,
      };
      expect(Object.entries(selectors).filter(([, selector]) => matches(selector))).toEqual([]);
    },
  );
});

describe('a release without its queue', () => {
  it('refuses a streamer or collector left calling the disabled queue, and takes one named instead', () => {
    const nowhere = template('gpu-telemetry', { queue: { enabled: false } });
    expect(nowhere.status).not.toBe(0);
    expect(nowhere.stderr).toContain(
      "queue.enabled=false: the streamer would call this release's queue, which is disabled; name the queue it should use (streamer.config.QUEUE_URL)",
    );
    const partly = template('gpu-telemetry', {
      queue: { enabled: false },
      streamer: { config: { QUEUE_URL: 'http://queue.shared:8081' } },
    });
    expect(partly.stderr).toContain('(collector.config.QUEUE_URL)');
    const elsewhere = render$('gpu-telemetry', {
      queue: { enabled: false },
      streamer: { config: { QUEUE_URL: 'http://queue.shared:8081' } },
      collector: { config: { QUEUE_URL: 'http://queue.shared:8081' } },
    });
    for (const name of ['streamer', 'collector'])
      expect(envOf(workloadOf(elsewhere, name))['QUEUE_URL']?.value).toBe('http://queue.shared:8081');
    expect(elsewhere.some((m) => m.metadata.name === 'gt-queue')).toBe(false);
    // Neither of them installed: nothing calls the queue.
    expect(
      template('gpu-telemetry', {
        queue: { enabled: false },
        streamer: { enabled: false },
        collector: { enabled: false },
      }).status,
    ).toBe(0);
  });
});

describe("the collector and the streamer's retention", () => {
  it('refuses a TELEMETRY_RETENTION set for one of them alone, and takes the same one written either way', () => {
    for (const [values, message] of [
      [
        { streamer: { config: { TELEMETRY_RETENTION: '30d' } } },
        'TELEMETRY_RETENTION: the streamer keeps raw samples 30d, the collector takes them 7d (unset)',
      ],
      [
        { collector: { config: { TELEMETRY_RETENTION: '0' } } },
        'TELEMETRY_RETENTION: the streamer keeps raw samples 7d (unset), the collector takes them 0',
      ],
    ] as const) {
      const result = template('gpu-telemetry', values);
      expect(result.status).not.toBe(0);
      expect(result.stderr).toContain(message);
    }
    const same = render$('gpu-telemetry', {
      streamer: { config: { TELEMETRY_RETENTION: '30d' } },
      collector: { config: { TELEMETRY_RETENTION: '720h' } },
    });
    expect(envOf(workloadOf(same, 'collector'))['TELEMETRY_RETENTION']?.value).toBe('720h');
    for (const values of [
      { streamer: { config: { TELEMETRY_RETENTION: '7d' } } },
      {
        streamer: { config: { TELEMETRY_RETENTION: '0' } },
        collector: { config: { TELEMETRY_RETENTION: '0' } },
      },
      { streamer: { config: { TELEMETRY_RETENTION: '30d' } }, collector: { enabled: false } },
    ])
      expect(template('gpu-telemetry', values).status).toBe(0);
  });
});

describe("the queue's payload limit and the collector's messages", () => {
  it('refuses a QUEUE_MAX_PAYLOAD under the 200 KiB a collector message may take, whatever its form', () => {
    for (const value of ['128kb', '199kb', 150_000]) {
      const result = template('gpu-telemetry', { queue: { config: { QUEUE_MAX_PAYLOAD: value } } });
      expect(result.status).not.toBe(0);
      expect(result.stderr).toContain(
        `queue.config.QUEUE_MAX_PAYLOAD: ${value} is below the 200 KiB a collector's message may take`,
      );
    }
    for (const values of [
      { queue: { config: { QUEUE_MAX_PAYLOAD: '200kb' } } },
      { queue: { config: { QUEUE_MAX_PAYLOAD: '1mb' } } },
      { queue: { config: { QUEUE_MAX_PAYLOAD: '64kb' } }, collector: { enabled: false } },
    ])
      expect(template('gpu-telemetry', values).status).toBe(0);
  });
});

describe('a service chart on its own', () => {
  it.each(SERVICE_CHARTS)(
    'renders %s with defaults, and with its own database URL and migrations',
    (chart) => {
      const defaults = render$(chart);
      for (const manifest of defaults) validateAgainstKubernetes(manifest);
      // Closed (or, for the gateway, open) by its own NetworkPolicy, Prometheus let in by default.
      const policy = find(defaults, 'NetworkPolicy', `gt-${chart}`);
      expect(policy.spec.ingress[0].ports).toEqual([{ port: PORTS[chart], protocol: 'TCP' }]);
      expect(policy.spec.ingress[0].from).toEqual(
        chart === 'gateway' ? undefined : [RELEASE_PODS, PROMETHEUS],
      );
      const manifests = render$(chart, {
        database: { url: 'postgres://u:p@db:5432/gt' },
        migrations: { enabled: true },
        serviceMonitor: { enabled: true },
      });
      for (const manifest of manifests) validateAgainstKubernetes(manifest);
      expect(find(manifests, 'Secret', `gt-${chart}-database`).stringData?.['DATABASE_URL']).toBe(
        'postgres://u:p@db:5432/gt',
      );
      expect(containerOf(find(manifests, 'Job', `gt-${chart}-migrate`)).args).toEqual(['migrate', 'up']);
      const monitor = find(manifests, 'ServiceMonitor', `gt-${chart}`);
      expect(monitor.spec.endpoints[0].path).toBe('/metrics');
      // It selects one Service, so each pod is scraped once (the collector's headless Service too
      // carries its pods' labels).
      const selected = manifests.filter(
        (m) => m.kind === 'Service' && selectsService(monitor.spec.selector, m),
      );
      expect(selected.map((m) => m.metadata.name)).toEqual([`gt-${chart}`]);
    },
  );
});

/** Whether a Service selector (matchLabels, and matchExpressions with Exists or DoesNotExist) selects it. */
function selectsService(
  selector: { matchLabels?: Record<string, string>; matchExpressions?: { key: string; operator: string }[] },
  manifest: Manifest,
): boolean {
  const labels: Record<string, string> = manifest.metadata.labels ?? {};
  return (
    Object.entries(selector.matchLabels ?? {}).every(([key, value]) => labels[key] === value) &&
    (selector.matchExpressions ?? []).every((e) =>
      e.operator === 'DoesNotExist' ? !(e.key in labels) : e.operator === 'Exists' ? e.key in labels : false,
    )
  );
}

describe('files mounted into the pods', () => {
  const CA_VOLUME = { name: 'postgres-ca', secret: { secretName: 'postgres-ca' } };
  const CA_MOUNT = { name: 'postgres-ca', mountPath: '/etc/postgres-ca', readOnly: true };
  const CA_URL = 'postgres://gt@db:5432/gt?sslmode=verify-full&sslrootcert=/etc/postgres-ca/ca.crt';
  const podOf = (manifest: Manifest) => manifest.spec.template.spec;

  it.each(SERVICE_CHARTS)(
    "mounts extraVolumes into %s's container at extraVolumeMounts, and the migration Job's own",
    (chart) => {
      const manifests = render$(chart, {
        database: { url: CA_URL },
        extraVolumes: [CA_VOLUME, { name: 'scratch' }],
        extraVolumeMounts: [CA_MOUNT, { name: 'scratch', mountPath: '/scratch' }],
        migrations: { enabled: true, extraVolumes: [CA_VOLUME], extraVolumeMounts: [CA_MOUNT] },
      });
      for (const manifest of manifests) validateAgainstKubernetes(manifest);
      const workload = workloadOf(manifests, chart);
      expect(podOf(workload).volumes).toEqual([
        { name: 'tmp', emptyDir: { sizeLimit: '64Mi' } },
        CA_VOLUME,
        { name: 'scratch' },
      ]);
      expect(containerOf(workload).volumeMounts).toEqual([
        { name: 'tmp', mountPath: '/tmp' },
        CA_MOUNT,
        { name: 'scratch', mountPath: '/scratch' },
      ]);
      const job = find(manifests, 'Job', `gt-${chart}-migrate`);
      expect(podOf(job).volumes).toEqual([CA_VOLUME]);
      expect(containerOf(job).volumeMounts).toEqual([CA_MOUNT]);
      // Without them, the pods keep their /tmp alone, and the Job none.
      const plain = render$(chart, { migrations: { enabled: true } });
      expect(podOf(workloadOf(plain, chart)).volumes).toEqual([
        { name: 'tmp', emptyDir: { sizeLimit: '64Mi' } },
      ]);
      expect(podOf(find(plain, 'Job', `gt-${chart}-migrate`)).volumes).toBeUndefined();
      expect(containerOf(find(plain, 'Job', `gt-${chart}-migrate`)).volumeMounts).toBeUndefined();
    },
  );

  it('replays a CSV mounted into the collector, and gives the migration Job the CA of Postgres, under the umbrella', () => {
    const manifests = render$('gpu-telemetry', {
      global: { database: { url: CA_URL } },
      migrations: { extraVolumes: [CA_VOLUME], extraVolumeMounts: [CA_MOUNT] },
      collector: {
        config: { COLLECT_CSV: '/data/dcgm_metrics.csv' },
        extraVolumes: [{ name: 'csv', configMap: { name: 'dcgm-metrics' } }],
        extraVolumeMounts: [{ name: 'csv', mountPath: '/data', readOnly: true }],
      },
    });
    for (const manifest of manifests) validateAgainstKubernetes(manifest);
    const collector = workloadOf(manifests, 'collector');
    expect(envOf(collector)['COLLECT_CSV']?.value).toBe('/data/dcgm_metrics.csv');
    expect(podOf(collector).volumes).toContainEqual({ name: 'csv', configMap: { name: 'dcgm-metrics' } });
    expect(containerOf(collector).volumeMounts).toContainEqual({
      name: 'csv',
      mountPath: '/data',
      readOnly: true,
    });
    expect(podOf(workloadOf(manifests, 'queue')).volumes).toHaveLength(1);
    const job = find(manifests, 'Job', 'gt-migrate');
    expect(podOf(job).volumes).toEqual([CA_VOLUME]);
    expect(containerOf(job).volumeMounts).toEqual([CA_MOUNT]);
  });

  it('leaves out a variable the chart sets when extraEnv has the service read it from a file (<NAME>_FILE)', () => {
    const files = (names: string[]) => ({
      extraVolumes: [{ name: 'secrets', secret: { secretName: 'gt-files' } }],
      extraVolumeMounts: [{ name: 'secrets', mountPath: '/run/secrets/gt', readOnly: true }],
      extraEnv: names.map((name) => ({ name: `${name}_FILE`, value: `/run/secrets/gt/${name}` })),
    });
    const manifests = render$('gpu-telemetry', {
      queue: files(['DATABASE_URL', 'SERVICE_TOKEN']),
      gateway: files(['GATEWAY_ADMIN_KEY']),
    });
    for (const manifest of manifests) validateAgainstKubernetes(manifest);
    const queue = envOf(workloadOf(manifests, 'queue'));
    expect(queue['DATABASE_URL']).toBeUndefined();
    expect(queue['SERVICE_TOKEN']).toBeUndefined();
    expect(queue['DATABASE_URL_FILE']?.value).toBe('/run/secrets/gt/DATABASE_URL');
    expect(queue['SERVICE_TOKEN_FILE']?.value).toBe('/run/secrets/gt/SERVICE_TOKEN');
    expect(queue['SERVICE_TOKEN_PREVIOUS']?.valueFrom?.secretKeyRef?.name).toBe('gt-service-token');
    const gateway = envOf(workloadOf(manifests, 'gateway'));
    expect(gateway['GATEWAY_ADMIN_KEY']).toBeUndefined();
    expect(gateway['GATEWAY_ADMIN_KEY_FILE']?.value).toBe('/run/secrets/gt/GATEWAY_ADMIN_KEY');
    expect(gateway['DATABASE_URL']?.valueFrom?.secretKeyRef?.name).toBe('gpu-telemetry-database');
    // The other services, and the migration Job, still read the Secrets.
    expect(envOf(workloadOf(manifests, 'streamer'))['DATABASE_URL']?.valueFrom).toBeDefined();
    expect(envOf(find(manifests, 'Job', 'gt-migrate'))['DATABASE_URL']?.valueFrom).toBeDefined();
  });

  it('gives the migration Job the database URL from a file when its extraEnv says DATABASE_URL_FILE', () => {
    const fromFile = {
      extraVolumes: [{ name: 'secrets', secret: { secretName: 'gt-files' } }],
      extraVolumeMounts: [{ name: 'secrets', mountPath: '/run/secrets/gt', readOnly: true }],
      extraEnv: [
        { name: 'DATABASE_URL_FILE', value: '/run/secrets/gt/DATABASE_URL' },
        { name: 'PGCONNECT_TIMEOUT', value: '10' },
      ],
    };
    const umbrella = render$('gpu-telemetry', { migrations: fromFile });
    const service = render$('streamer', { migrations: { enabled: true, ...fromFile } });
    for (const [manifests, name] of [
      [umbrella, 'gt-migrate'],
      [service, 'gt-streamer-migrate'],
    ] as const) {
      for (const manifest of manifests) validateAgainstKubernetes(manifest);
      const job = find(manifests, 'Job', name);
      expect(containerOf(job).env).toEqual(fromFile.extraEnv);
      expect(containerOf(job).volumeMounts).toEqual(fromFile.extraVolumeMounts);
    }
    // The services still read the Secret: the Job's extraEnv is its own.
    expect(envOf(workloadOf(umbrella, 'streamer'))['DATABASE_URL']?.valueFrom).toBeDefined();
  });

  it.each([
    [
      'a mount of no volume',
      { extraVolumeMounts: [{ name: 'ca', mountPath: '/ca' }] },
      'extraVolumeMounts: "ca" mounts no volume of the pod; add it to extraVolumes',
    ],
    [
      "a volume named as the chart's own",
      { extraVolumes: [{ name: 'tmp', emptyDir: {} }] },
      `extraVolumes: the name "tmp" is taken by the chart's own volume`,
    ],
    [
      'a volume named twice',
      { extraVolumes: [{ name: 'ca' }, { name: 'ca' }] },
      'extraVolumes: the name "ca" is taken twice',
    ],
    [
      "a mount over the chart's own /tmp",
      { extraVolumes: [{ name: 'ca' }], extraVolumeMounts: [{ name: 'ca', mountPath: '/tmp/' }] },
      'extraVolumeMounts: "ca" is mounted at /tmp/, where another volume is',
    ],
    [
      'a mount of no volume in the migration Job',
      { migrations: { enabled: true, extraVolumeMounts: [{ name: 'ca', mountPath: '/ca' }] } },
      'migrations.extraVolumeMounts: "ca" mounts no volume of the pod; add it to migrations.extraVolumes',
    ],
  ])('refuses %s, which Kubernetes would', (_what, values, message) => {
    const result = template('queue', values);
    expect(result.status).not.toBe(0);
    expect(result.stderr).toContain(message);
  });
});

describe('the image of each service', () => {
  /** Image and pull policy of each workload and of the migration Job, by name. */
  const images = (values: unknown) =>
    Object.fromEntries(
      render$('gpu-telemetry', values)
        .filter((m) => m.spec?.template)
        .map((m) => [m.metadata.name, `${containerOf(m).image} ${containerOf(m).imagePullPolicy}`]),
    );

  it("takes a service's own repository and pull policy under the umbrella, else global.image, else the default", () => {
    expect(
      images({
        global: { image: { repository: 'registry.example.com/gt', pullPolicy: 'Always' } },
        queue: { image: { repository: 'registry.example.com/queue', pullPolicy: 'Never' } },
        streamer: { image: { repository: 'registry.example.com/streamer' } },
        collector: { image: { pullPolicy: 'IfNotPresent' } },
      }),
    ).toEqual({
      'gt-gateway': 'registry.example.com/gt:0.1.0 Always',
      'gt-queue': 'registry.example.com/queue:0.1.0 Never',
      'gt-streamer': 'registry.example.com/streamer:0.1.0 Always',
      'gt-collector': 'registry.example.com/gt:0.1.0 IfNotPresent',
      'gt-migrate': 'registry.example.com/gt:0.1.0 Always',
    });
    // Neither: the default.
    expect(images({ queue: { image: { repository: 'registry.example.com/queue' } } })).toEqual({
      'gt-gateway': 'ghcr.io/gpu-telemetry/gpu-telemetry:0.1.0 IfNotPresent',
      'gt-queue': 'registry.example.com/queue:0.1.0 IfNotPresent',
      'gt-streamer': 'ghcr.io/gpu-telemetry/gpu-telemetry:0.1.0 IfNotPresent',
      'gt-collector': 'ghcr.io/gpu-telemetry/gpu-telemetry:0.1.0 IfNotPresent',
      'gt-migrate': 'ghcr.io/gpu-telemetry/gpu-telemetry:0.1.0 IfNotPresent',
    });
  });

  it("takes a service's own tag or digest over global.image's version, whichever of them global sets", () => {
    const digest = `sha256:${'a'.repeat(64)}`;
    const other = `sha256:${'b'.repeat(64)}`;
    expect(
      images({
        global: { image: { digest } },
        gateway: { image: { tag: '1.2.4' } },
        queue: { image: { digest: other } },
      }),
    ).toEqual({
      'gt-gateway': 'ghcr.io/gpu-telemetry/gpu-telemetry:1.2.4 IfNotPresent',
      'gt-queue': `ghcr.io/gpu-telemetry/gpu-telemetry@${other} IfNotPresent`,
      'gt-streamer': `ghcr.io/gpu-telemetry/gpu-telemetry@${digest} IfNotPresent`,
      'gt-collector': `ghcr.io/gpu-telemetry/gpu-telemetry@${digest} IfNotPresent`,
      'gt-migrate': `ghcr.io/gpu-telemetry/gpu-telemetry@${digest} IfNotPresent`,
    });
    expect(
      images({ global: { image: { tag: '2.0.0' } }, streamer: { image: { tag: '2.0.1' } } }),
    ).toMatchObject({
      'gt-gateway': 'ghcr.io/gpu-telemetry/gpu-telemetry:2.0.0 IfNotPresent',
      'gt-streamer': 'ghcr.io/gpu-telemetry/gpu-telemetry:2.0.1 IfNotPresent',
    });
  });

  it('takes image pull secrets as names or as {name}, from global and the chart, each once', () => {
    const manifests = render$('gpu-telemetry', {
      global: { imagePullSecrets: ['regcred', { name: 'mirror' }] },
      queue: { imagePullSecrets: [{ name: 'regcred' }, 'queue-only'] },
    });
    for (const manifest of manifests) validateAgainstKubernetes(manifest);
    expect(podSecrets(workloadOf(manifests, 'queue'))).toEqual(['regcred', 'mirror', 'queue-only']);
    expect(podSecrets(workloadOf(manifests, 'gateway'))).toEqual(['regcred', 'mirror']);
    expect(podSecrets(find(manifests, 'Job', 'gt-migrate'))).toEqual(['regcred', 'mirror']);
    expect(
      podSecrets(workloadOf(render$('streamer', { imagePullSecrets: [{ name: 'x' }] }), 'streamer')),
    ).toEqual(['x']);
    for (const secrets of [[{ secret: 'x' }], [{ name: '' }], ['']]) {
      const result = template('gpu-telemetry', { global: { imagePullSecrets: secrets } });
      expect(result.status).not.toBe(0);
      expect(result.stderr).toMatch(/imagePullSecrets/);
    }
  });
});

function podSecrets(manifest: Manifest): string[] {
  return (manifest.spec.template.spec.imagePullSecrets as { name: string }[]).map((s) => s.name);
}

describe('the ServiceMonitor', () => {
  it.each(['30s', '1m30s', '1h', '500ms', '2m', '1h30m15s', '0'])(
    'takes the Prometheus duration %s as interval and scrape timeout',
    (duration) => {
      const monitor = find(
        render$('gpu-telemetry', {
          gateway: { serviceMonitor: { enabled: true, interval: duration, scrapeTimeout: duration } },
        }),
        'ServiceMonitor',
        'gt-gateway',
      );
      expect(monitor.spec.endpoints[0]).toMatchObject({ interval: duration, scrapeTimeout: duration });
    },
  );

  it.each(['', '30', '1.5m', '30s1m', '1 m', '-1s', '30sec'])(
    'refuses %j, which Prometheus would',
    (duration) => {
      const result = template('queue', { serviceMonitor: { enabled: true, interval: duration } });
      expect(result.status).not.toBe(0);
      expect(result.stderr).toMatch(/interval/);
    },
  );
});

describe('values.schema.json', () => {
  const rejected: Array<[string, string, unknown, RegExp]> = [
    ['a typo in a top-level key', 'gpu-telemetry', { gatway: { enabled: false } }, /gatway/],
    ['a bad database URL', 'gpu-telemetry', { global: { database: { url: 'mysql://db/gt' } } }, /url/],
    [
      'a sampler ratio above 1',
      'gpu-telemetry',
      { global: { tracing: { samplerRatio: 2 } } },
      /samplerRatio/,
    ],
    ['replicas as a word', 'queue', { replicaCount: 'two' }, /replicaCount/],
    ['an unknown config variable', 'queue', { config: { QUEUE_MAX_ATTEMPT: 5 } }, /QUEUE_MAX_ATTEMPT/],
    ['a duration without a unit', 'streamer', { config: { STREAMER_WAIT: '10 seconds' } }, /STREAMER_WAIT/],
    ['a number out of range', 'streamer', { config: { STREAMER_CONCURRENCY: 500 } }, /STREAMER_CONCURRENCY/],
    ['an unknown log level', 'gateway', { logLevel: 'verbose' }, /logLevel/],
    // Resources are <release>-<chart>, by which the other services find them.
    ['a name override', 'queue', { nameOverride: 'jobs' }, /nameOverride/],
    ['a full name override', 'gpu-telemetry', { queue: { fullnameOverride: 'jobs' } }, /fullnameOverride/],
    ['a short admin key', 'gateway', { adminKey: { value: 'short' } }, /adminKey/],
    ['a service type that does not exist', 'gateway', { service: { type: 'External' } }, /type/],
    [
      'autoscaling the collector (replicas own targets)',
      'collector',
      { autoscaling: { enabled: true } },
      /autoscaling/,
    ],
    ['zero collector replicas', 'collector', { replicaCount: 0 }, /replicaCount/],
    [
      'a scrape URL that is not http',
      'collector',
      { dcgmExporter: { targets: ['ftp://x/metrics'] } },
      /targets/,
    ],
    [
      'a NetworkPolicy peer with a misspelt selector',
      'queue',
      { networkPolicy: { ingressFrom: [{ podSelectr: {} }] } },
      /podSelectr/,
    ],
    [
      'metrics peers that are not a list',
      'gpu-telemetry',
      { global: { networkPolicy: { metricsFrom: 'prometheus' } } },
      /metricsFrom/,
    ],
    [
      'a typo under serviceToken',
      'gpu-telemetry',
      { global: { serviceToken: { existing: 'x' } } },
      /existing/,
    ],
    [
      'a bad value in a subchart of the umbrella',
      'gpu-telemetry',
      { queue: { config: { QUEUE_BODY_LIMIT: 'lots' } } },
      /QUEUE_BODY_LIMIT/,
    ],
    // The gateway would refuse each at startup, and crash-loop.
    ...['10.0.0.0/33', '999.1.1.1', 'abc', '1.2.3.4/8/9', '10.0.0.1, fd00::/129'].map(
      (proxies): [string, string, unknown, RegExp] => [
        `trusted proxies ${proxies}`,
        'gateway',
        { config: { GATEWAY_TRUSTED_PROXIES: proxies } },
        /GATEWAY_TRUSTED_PROXIES/,
      ],
    ),
  ];

  it('takes trusted proxies the gateway takes: addresses and blocks of either family, comma-separated', () => {
    for (const proxies of [
      '10.0.0.0/8',
      '10.0.0.0/8, 192.168.1.7',
      'fd00::/8,::1',
      '::ffff:10.0.0.1/128',
      '',
    ])
      expect([proxies, template('gateway', { config: { GATEWAY_TRUSTED_PROXIES: proxies } }).status]).toEqual(
        [proxies, 0],
      );
  });

  it('refuses what Kubernetes would: a release name too long for its names, min above max replicas, a relative Ingress path', () => {
    const long = helm(['template', 'r'.repeat(40), path.join(helmDir, 'gpu-telemetry')]);
    expect(long.status).not.toBe(0);
    expect(long.stderr).toContain(
      `the release name "${'r'.repeat(40)}" is 40 characters long; use at most 39`,
    );
    expect(helm(['template', 'r'.repeat(39), path.join(helmDir, 'gpu-telemetry')]).status).toBe(0);
    const scaling = template('queue', { autoscaling: { enabled: true, minReplicas: 5, maxReplicas: 2 } });
    expect(scaling.status).not.toBe(0);
    expect(scaling.stderr).toContain(
      'autoscaling.minReplicas (5) must not be above autoscaling.maxReplicas (2)',
    );
    const relative = template('gateway', {
      ingress: { enabled: true, hosts: [{ host: 'x.example.com', paths: ['api'] }] },
    });
    expect(relative.status).not.toBe(0);
    expect(relative.stderr).toContain('"api" must be an absolute path, starting with /');
  });

  it('gives an Ingress without hosts a default backend (every host), and quotes its paths', () => {
    const open = render$('gateway', { ingress: { enabled: true } });
    const ingress = find(open, 'Ingress', 'gt-gateway');
    expect(ingress.spec.rules).toBeUndefined();
    expect(ingress.spec.defaultBackend).toEqual({ service: { name: 'gt-gateway', port: { name: 'http' } } });
    const odd = render$('gateway', {
      ingress: { enabled: true, hosts: [{ host: 'x.example.com', paths: ['/a #b: c'] }] },
    });
    expect(find(odd, 'Ingress', 'gt-gateway').spec.rules[0].http.paths[0].path).toBe('/a #b: c');
    for (const manifest of [...open, ...odd]) validateAgainstKubernetes(manifest);
  });

  it.each(rejected)('rejects %s with a message naming it', (_what, chart, values, field) => {
    const result = template(chart, values);
    expect(result.status).not.toBe(0);
    expect(result.stderr).toMatch(/values don't meet the specifications of the schema/);
    expect(result.stderr).toMatch(field);
  });

  // JSON Schema cannot compare durations: the range each service takes is checked by the templates
  // (common.checkDurations), naming the value, before anything is installed.
  it.each([
    ['streamer', { config: { STREAMER_WAIT: '2m' } }, 'config.STREAMER_WAIT: 2m is above 60s'],
    ['streamer', { config: { TELEMETRY_CHUNK: '30s' } }, 'config.TELEMETRY_CHUNK: 30s is below 1m'],
    ['collector', { config: { COLLECT_INTERVAL: '50ms' } }, 'config.COLLECT_INTERVAL: 50ms is below 100ms'],
    ['collector', { config: { COLLECT_TIMEOUT: '50ms' } }, 'config.COLLECT_TIMEOUT: 50ms is below 100ms'],
    [
      'gpu-telemetry',
      { gateway: { config: { GATEWAY_TIMEOUT: '0.5h' } } },
      'config.GATEWAY_TIMEOUT: 0.5h is above 10m',
    ],
  ])('refuses a %s duration outside its service range: %j', (chart, values, message) => {
    const result = template(chart, values);
    expect(result.status).not.toBe(0);
    expect(result.stderr).toContain(message);
  });

  // ... and the rules between them (duration-rules.json: step, divides, atMost), the other
  // variable counted at its service's default when unset.
  it.each([
    ['streamer', { TELEMETRY_CHUNK: '90s' }, 'config.TELEMETRY_CHUNK: 90s is not a whole number of 1m'],
    ['streamer', { TELEMETRY_CHUNK: '7m' }, 'config.TELEMETRY_CHUNK: 7m does not divide 1d evenly'],
    [
      'streamer',
      { TELEMETRY_SLICE: '7m' },
      'config.TELEMETRY_SLICE: 7m does not divide TELEMETRY_CHUNK (1h)',
    ],
    [
      'streamer',
      { TELEMETRY_CHUNK: '5m', TELEMETRY_SLICE: '10m' },
      'config.TELEMETRY_SLICE: 10m does not divide TELEMETRY_CHUNK (5m)',
    ],
    ['streamer', { TELEMETRY_SLICE: '1.5m' }, 'config.TELEMETRY_SLICE: 1.5m is not a whole number of 1m'],
    [
      'collector',
      { COLLECT_TIMEOUT: '45s' },
      'config.COLLECT_TIMEOUT: 45s is longer than COLLECT_INTERVAL (30s)',
    ],
    [
      'collector',
      { COLLECT_INTERVAL: '5s', COLLECT_TIMEOUT: '10s' },
      'config.COLLECT_TIMEOUT: 10s is longer than COLLECT_INTERVAL (5s)',
    ],
  ])('refuses a %s configuration its service would refuse: %j', (chart, config, message) => {
    const result = template(chart, { config });
    expect(result.status).not.toBe(0);
    expect(result.stderr).toContain(message);
    const umbrella = template('gpu-telemetry', { [chart]: { config } });
    expect(umbrella.status).not.toBe(0);
    expect(umbrella.stderr).toContain(message);
  });

  it('refuses a termination grace period the service would outlast stopping, counting its preStop sleep', () => {
    const refused = template('gateway', { config: { SHUTDOWN_TIMEOUT: '60s' } });
    expect(refused.status).not.toBe(0);
    expect(refused.stderr).toContain(
      'terminationGracePeriodSeconds: 30 is not above preStopSleepSeconds (5) + SHUTDOWN_TIMEOUT (60s) + 10s',
    );
    expect(template('queue', { preStopSleepSeconds: 30 }).stderr).toContain(
      'terminationGracePeriodSeconds: 30 is not above preStopSleepSeconds (30) + SHUTDOWN_TIMEOUT (10s) + 10s',
    );
    expect(template('gpu-telemetry', { streamer: { config: { SHUTDOWN_TIMEOUT: '1m' } } }).status).not.toBe(
      0,
    );
    const workload = find(
      render$('gateway', { config: { SHUTDOWN_TIMEOUT: '60s' }, terminationGracePeriodSeconds: 90 }),
      'Deployment',
      'gt-gateway',
    );
    expect(workload.spec.template.spec.terminationGracePeriodSeconds).toBe(90);
  });

  it("refuses a client's share of the long-polls above all of them, as the gateway would", () => {
    for (const [config, message] of [
      [
        { GATEWAY_MAX_LONG_POLLS_PER_CLIENT: 2000 },
        'config.GATEWAY_MAX_LONG_POLLS_PER_CLIENT: 2000 is above GATEWAY_MAX_CONCURRENCY (1024)',
      ],
      [
        { GATEWAY_MAX_LONG_POLLS: 10, GATEWAY_MAX_LONG_POLLS_PER_CLIENT: 11 },
        'config.GATEWAY_MAX_LONG_POLLS_PER_CLIENT: 11 is above GATEWAY_MAX_LONG_POLLS (10)',
      ],
      [
        { GATEWAY_MAX_CONCURRENCY: 10, GATEWAY_MAX_LONG_POLLS_PER_CLIENT: 11 },
        'config.GATEWAY_MAX_LONG_POLLS_PER_CLIENT: 11 is above GATEWAY_MAX_CONCURRENCY (10)',
      ],
    ] as const) {
      const result = template('gpu-telemetry', { gateway: { config } });
      expect(result.status).not.toBe(0);
      expect(result.stderr).toContain(message);
    }
    for (const config of [
      { GATEWAY_MAX_LONG_POLLS_PER_CLIENT: 1024 },
      { GATEWAY_MAX_CONCURRENCY: 10, GATEWAY_MAX_LONG_POLLS: 100, GATEWAY_MAX_LONG_POLLS_PER_CLIENT: 50 },
    ])
      expect(template('gateway', { config }).status).toBe(0);
  });

  it("refuses a client's share of the requests in flight above all of them, as the gateway would", () => {
    for (const [config, message] of [
      [
        { GATEWAY_MAX_CONCURRENCY_PER_CLIENT: 2000 },
        'config.GATEWAY_MAX_CONCURRENCY_PER_CLIENT: 2000 is above GATEWAY_MAX_CONCURRENCY (1024)',
      ],
      [
        { GATEWAY_MAX_CONCURRENCY: 10, GATEWAY_MAX_CONCURRENCY_PER_CLIENT: 11 },
        'config.GATEWAY_MAX_CONCURRENCY_PER_CLIENT: 11 is above GATEWAY_MAX_CONCURRENCY (10)',
      ],
    ] as const) {
      const result = template('gpu-telemetry', { gateway: { config } });
      expect(result.status).not.toBe(0);
      expect(result.stderr).toContain(message);
    }
    for (const config of [
      { GATEWAY_MAX_CONCURRENCY_PER_CLIENT: 1024 },
      { GATEWAY_MAX_CONCURRENCY: 10, GATEWAY_MAX_CONCURRENCY_PER_CLIENT: 10 },
    ])
      expect(template('gateway', { config }).status).toBe(0);
  });

  it('passes whole numbers as written, however large (a values file reads them as floats)', () => {
    const env = envOf(
      find(
        render$('gateway', { config: { GATEWAY_BODY_LIMIT: 33_554_432, GATEWAY_RATE_BURST: 1_000_000 } }),
        'Deployment',
        'gt-gateway',
      ),
    );
    expect([env['GATEWAY_BODY_LIMIT']?.value, env['GATEWAY_RATE_BURST']?.value]).toEqual([
      '33554432',
      '1000000',
    ]);
  });

  it('keeps a PodDisruptionBudget of 0 as 0 (maxUnavailable: 0 blocks evictions)', () => {
    const pdb = (values: object) =>
      find(render$('queue', { podDisruptionBudget: values }), 'PodDisruptionBudget', 'gt-queue').spec;
    expect(pdb({ enabled: true, maxUnavailable: 0 })).toMatchObject({ maxUnavailable: 0 });
    expect(pdb({ enabled: true, minAvailable: 0 })).toMatchObject({ minAvailable: 0 });
    expect(pdb({ enabled: true, minAvailable: null, maxUnavailable: null })).toMatchObject({
      maxUnavailable: 1,
    });
  });

  it('takes what the services take across those rules', () => {
    for (const config of [
      { TELEMETRY_CHUNK: '2m', TELEMETRY_SLICE: '1m' },
      { TELEMETRY_SLICE: '10m' },
      { TELEMETRY_CHUNK: '1d', TELEMETRY_SLICE: '8h' },
    ])
      expect(render$('streamer', { config }).length).toBeGreaterThan(0);
    for (const config of [
      { COLLECT_INTERVAL: '5s', COLLECT_TIMEOUT: '5s' },
      { COLLECT_INTERVAL: '5s' },
      { COLLECT_TIMEOUT: '100ms' },
    ])
      expect(render$('collector', { config }).length).toBeGreaterThan(0);
  });

  it('takes the ends of each range, and 0 where the service does', () => {
    render$('streamer', {
      config: {
        STREAMER_WAIT: '60s',
        TELEMETRY_CHUNK: '1d',
        TELEMETRY_SLICE: '0',
        SHUTDOWN_TIMEOUT: '0',
        TELEMETRY_COMPACT_AFTER: '10s',
      },
    });
    render$('collector', { config: { COLLECT_INTERVAL: '100ms', COLLECT_TIMEOUT: '0' } });
  });

  it('is what deploy/tools/schemas.cjs generates (npm run helm:schemas)', () => {
    for (const [chart, schema] of Object.entries(buildSchemas())) {
      expect(
        `${chart}: ${readFileSync(path.join(root, 'deploy/helm', chart, 'values.schema.json'), 'utf8')}`,
      ).toBe(`${chart}: ${render(schema)}`);
    }
    for (const [chart, rules] of Object.entries(buildDurationRules())) {
      expect(
        `${chart}: ${readFileSync(path.join(root, 'deploy/helm', chart, 'duration-rules.json'), 'utf8')}`,
      ).toBe(`${chart}: ${render(rules)}`);
    }
  });

  it('knows only environment variables that .env.example documents', () => {
    for (const [service, { config }] of Object.entries(SERVICES)) {
      for (const key of Object.keys(config)) {
        expect(documentedIn(service, key)).toBe(`${service}: ${key} documented`);
      }
    }
  });
});

describe('values.yaml', () => {
  /** Every key path of `values` is described by `schema` (down to objects the schema leaves free). */
  function uncovered(values: unknown, schema: Record<string, unknown>, at: string): string[] {
    if (values === null || typeof values !== 'object' || Array.isArray(values)) return [];
    const properties = schema['properties'] as Record<string, Record<string, unknown>> | undefined;
    const additional = schema['additionalProperties'];
    if (!properties) return [];
    return Object.entries(values).flatMap(([key, value]) => {
      const child =
        properties[key] ??
        (typeof additional === 'object' ? (additional as Record<string, unknown>) : undefined);
      if (!child) return [`${at}.${key}`];
      return uncovered(value, child, `${at}.${key}`);
    });
  }

  it.each(['gpu-telemetry', ...SERVICE_CHARTS])('of %s has every value covered by its schema', (chart) => {
    const [doc] = parseAllDocuments(
      readFileSync(path.join(root, 'deploy/helm', chart, 'values.yaml'), 'utf8'),
    );
    const values = doc!.toJS() as Record<string, unknown>;
    const schema = JSON.parse(
      readFileSync(path.join(root, 'deploy/helm', chart, 'values.schema.json'), 'utf8'),
    );
    expect(Object.keys(values).length).toBeGreaterThan(3);
    expect(uncovered(values, schema, chart)).toEqual([]);
    expect(schema.additionalProperties).toBe(false);
  });
});
