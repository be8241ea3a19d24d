#!/usr/bin/env node
'use strict';
/**
 * The values.schema.json of every chart under deploy/helm, generated from one description so the
 * four service charts cannot drift apart. `npm run helm:schemas` rewrites them; the deploy tests
 * fail when a committed schema differs from what this file generates.
 *
 * `config` keys are the services' environment variables (see .env.example), each checked the
 * way the service itself parses it, so a typo or a bad duration fails `helm install` instead of a
 * crash-looping pod.
 */
const { writeFileSync } = require('node:fs');
const path = require('node:path');

const HELM_DIR = path.resolve(__dirname, '../helm');

// An IPv4 address as Node's isIP takes one (no leading zeros), an IPv6 one loosely (hex groups and
// colons, an IPv4 tail), each with a prefix in its family's range, comma-separated: what the
// gateway's GATEWAY_TRUSTED_PROXIES takes, so a wrong entry fails the install, not the pod.
const OCTET = '(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])';
const IPV4 = `(${OCTET}\\.){3}${OCTET}`;
const IPV6 = `[0-9a-fA-F]{0,4}(:[0-9a-fA-F]{0,4}){1,7}(:${IPV4})?`;
const PROXY = `(${IPV4}(/(3[0-2]|[12]?[0-9]))?|${IPV6}(/(12[0-8]|1[01][0-9]|[1-9]?[0-9]))?)`;
const TRUSTED_PROXIES = `^ *(${PROXY})? *(, *(${PROXY})? *)*$`;

// --- value kinds, as the services parse their environment ---------------------------------------
const str = (description, extra = {}) => ({ type: 'string', description, ...extra });
const bool = (description) => ({ type: 'boolean', description });
const integer = (description, minimum, maximum) => ({
  type: 'integer',
  description,
  ...(minimum === undefined ? {} : { minimum }),
  ...(maximum === undefined ? {} : { maximum }),
});
const obj = (properties, extra = {}) => ({
  type: 'object',
  additionalProperties: false,
  properties,
  ...extra,
});
const freeObject = (description) => ({ type: 'object', description });
const stringMap = (description) => ({
  type: 'object',
  description,
  additionalProperties: { type: 'string' },
});

const DURATION = '^\\d+(\\.\\d+)?(ms|s|m|h|d)$';
const UNIT_MS = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const durationMs = (text) => {
  const [, number, unit] = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(text);
  return Number(number) * UNIT_MS[unit];
};
const env = {
  /**
   * A duration the service takes from `min` to `max` (as its config says; 0 too when it has no
   * minimum, or `orZero`). JSON Schema cannot compare durations, so the range goes in x-min-ms and
   * x-max-ms, which the charts' templates check (common.checkDurations), with the service's other
   * rules: `step` (a whole number of it), `divides` (a duration, or another variable), `atMost`
   * (another variable). `default` is the service's default, for rules that name this variable.
   */
  duration: (description, { min, max, orZero, step, divides, atMost, default: fallback } = {}) => ({
    description: `${description} A duration such as 500ms, 30s, 5m, 1h or 7d${min && !orZero ? '' : ', or 0'}${
      min || max ? `; from ${min ?? '0'} to ${max ?? 'unbounded'}` : ''
    }.`,
    type: 'string',
    pattern: min && !orZero ? DURATION : `^(0|\\d+(\\.\\d+)?(ms|s|m|h|d))$`,
    ...(fallback ? { default: fallback } : {}),
    ...(min ? { 'x-min': min, 'x-min-ms': durationMs(min) } : {}),
    ...(max ? { 'x-max': max, 'x-max-ms': durationMs(max) } : {}),
    ...(step ? { 'x-step': step, 'x-step-ms': durationMs(step) } : {}),
    ...(divides ? { 'x-divides': divides } : {}),
    ...(atMost ? { 'x-at-most': atMost } : {}),
  }),
  int: (description, minimum, maximum) => ({
    description: `${description} An integer from ${minimum} to ${maximum}.`,
    type: 'integer',
    minimum,
    maximum,
  }),
  bytes: (description) => ({
    description: `${description} A size such as 256kb, 32mb or a byte count.`,
    anyOf: [
      { type: 'string', pattern: '^\\d+\\s*([bB]|[kK][bB]|[mM][bB]|[gG][bB])?$' },
      { type: 'integer', minimum: 1 },
    ],
  }),
  flag: (description) => ({
    description,
    anyOf: [
      { type: 'boolean' },
      { type: 'string', enum: ['true', 'false', '1', '0', 'yes', 'no', 'on', 'off'] },
    ],
  }),
  url: (description) => str(description, { pattern: '^https?://[^\\s]+$' }),
};

const COMMON_CONFIG = {
  DATABASE_POOL_SIZE: env.int('Connections kept to Postgres.', 1, 200),
  SHUTDOWN_TIMEOUT: env.duration('Time in-flight work gets to finish after SIGTERM.', {
    max: '5m',
    default: '10s',
  }),
};

const SERVICES = {
  gateway: {
    port: 8080,
    // The front door: its NetworkPolicy lets anyone in unless told otherwise.
    open: true,
    description: 'API gateway: proxy, API keys, rate limits, request records and the OTLP trace receiver.',
    autoscaling: true,
    config: {
      GATEWAY_AUTH: env.flag('Require an API key on /api (health endpoints stay open).'),
      GATEWAY_TIMEOUT: env.duration('Upstream response-header timeout (queue long-polls get 60 s more).', {
        min: '100ms',
        max: '10m',
      }),
      GATEWAY_PROMQL_TIMEOUT: env.duration(
        "Timeout of /prometheus/api/v1/* (PromQL); longer than the streamer's PROMQL_TIMEOUT.",
        { min: '1s', max: '1h' },
      ),
      GATEWAY_CONNECT_TIMEOUT: env.duration('Upstream connect timeout.', { min: '100ms', max: '1m' }),
      GATEWAY_BODY_LIMIT: env.bytes('Largest request body.'),
      GATEWAY_RATE_LIMIT: env.int('Requests per second per key (per IP when anonymous).', 1, 1_000_000),
      GATEWAY_RATE_BURST: env.int('Token bucket burst.', 1, 1_000_000),
      GATEWAY_RECORDS: env.flag('Record every proxied request in Postgres.'),
      GATEWAY_RECORDS_BUFFER: env.int('Request records buffered before they are dropped.', 1, 10_000_000),
      GATEWAY_RECORDS_FLUSH: env.duration('How often buffered request records are written.', {
        min: '10ms',
        max: '1m',
      }),
      GATEWAY_RETENTION: env.duration('Keep request records and spans this long; 0 keeps everything.'),
      GATEWAY_BREAKER_FAILURES: env.int(
        'Consecutive failures that open an upstream circuit breaker.',
        1,
        1000,
      ),
      GATEWAY_BREAKER_COOLDOWN: env.duration('How long an open circuit breaker stays open.', {
        min: '100ms',
        max: '10m',
      }),
      GATEWAY_MAX_CONCURRENCY: env.int(
        'Upstream requests in flight at once, queue long-polls apart; beyond it, 503.',
        1,
        1_000_000,
      ),
      GATEWAY_MAX_CONCURRENCY_PER_CLIENT: env.int(
        'Upstream requests one key (one address when auth is off) may have in flight, a slowly sent body included; beyond it, 503. 0: a quarter of GATEWAY_MAX_CONCURRENCY.',
        0,
        1_000_000,
      ),
      GATEWAY_MAX_LONG_POLLS: env.int(
        'Queue long-polls (lease requests) waiting at once; beyond it, 503. 0: GATEWAY_MAX_CONCURRENCY.',
        0,
        1_000_000,
      ),
      GATEWAY_MAX_LONG_POLLS_PER_CLIENT: env.int(
        'Long-polls one key (one address when auth is off) may have waiting; beyond it, 503. 0: a quarter of GATEWAY_MAX_LONG_POLLS.',
        0,
        1_000_000,
      ),
      GATEWAY_AUTH_FAILURE_LIMIT: env.int(
        'Failed authentications per minute per client address (refill); past the burst, 429. 0: no limit.',
        0,
        1_000_000,
      ),
      GATEWAY_AUTH_FAILURE_BURST: env.int(
        'Failed authentications a client address may make at once.',
        1,
        1_000_000,
      ),
      GATEWAY_TRUSTED_PROXIES: str(
        'Load balancers or ingresses in front of the gateway, comma-separated IPs or CIDRs: for their requests the client address comes from X-Forwarded-For.',
        { pattern: TRUSTED_PROXIES },
      ),
    },
    extra: {
      upstreams: obj(
        {
          streamer: { type: 'array', items: env.url('A streamer instance.') },
          queue: { type: 'array', items: env.url('A queue instance.') },
          collector: { type: 'array', items: env.url('A collector instance.') },
        },
        { description: "Upstream instances per route; empty: this release's Service of that chart." },
      ),
      adminKey: obj(
        {
          existingSecret: str('Secret holding the bootstrap admin key (it is not created).'),
          secretKey: str('Key of the admin key in that Secret.', { minLength: 1 }),
          value: str('The bootstrap admin key itself (at least 24 characters); empty: one is generated.', {
            anyOf: [{ maxLength: 0 }, { minLength: 24 }],
          }),
        },
        { description: 'The bootstrap admin key (GATEWAY_ADMIN_KEY).' },
      ),
      ingress: obj({
        enabled: bool('Create an Ingress for the gateway.'),
        className: str('IngressClass name.'),
        annotations: stringMap('Ingress annotations.'),
        hosts: {
          type: 'array',
          items: obj(
            {
              host: str('Host name.', { minLength: 1 }),
              paths: { type: 'array', items: str('Path prefix.') },
            },
            { required: ['host'] },
          ),
        },
        tls: { type: 'array', items: freeObject('networking.k8s.io/v1 IngressTLS.') },
      }),
    },
  },
  queue: {
    port: 8081,
    description: 'Postgres-backed lease/ack message queue.',
    autoscaling: true,
    config: {
      QUEUE_MAX_ATTEMPTS: env.int('Deliveries before a message is dead-lettered.', 1, 1000),
      QUEUE_MAX_PAYLOAD: env.bytes('Largest payload of one message.'),
      QUEUE_BODY_LIMIT: env.bytes('Largest request body.'),
      QUEUE_PUBLISH_MEMORY: env.bytes(
        'Most publish body bytes held at once, all requests together (never below QUEUE_BODY_LIMIT); past it a publish is a 503. resources.limits.memory must hold 3 times it plus 192Mi.',
      ),
      QUEUE_RESPONSE_LIMIT: env.bytes(
        'Most payload bytes in one lease or dead-letter page (always one message).',
      ),
      QUEUE_BODY_TIMEOUT: env.duration('How long a publish body has to arrive whole (408 past it).', {
        min: '100ms',
        max: '5m',
      }),
      QUEUE_FALLBACK_POLL: env.duration('A waiting long-poll re-checks at least this often.', {
        min: '10ms',
        max: '1m',
      }),
      QUEUE_MAX_TOPICS: env.int(
        'Most topics the queue holds; past it a new topic is refused (409).',
        1,
        1000000,
      ),
    },
  },
  streamer: {
    port: 8082,
    description: 'Stores telemetry from the queue in Postgres and serves the query API.',
    autoscaling: true,
    config: {
      QUEUE_URL: env.url("Where the queue answers; default: this release's queue Service."),
      STREAMER_CONCURRENCY: env.int('Parallel lease loops.', 1, 64),
      STREAMER_BATCH: env.int('Queue messages per lease.', 1, 1000),
      STREAMER_VISIBILITY: env.duration('Lease visibility (extended while a batch runs).', {
        min: '1s',
        max: '12h',
      }),
      STREAMER_MAX_HANDLE: env.duration(
        'How long a batch may run with its lease kept alive; then the lease runs out, the loop leases on, and its messages are dead-lettered when offered to this streamer again.',
        { min: '10s', max: '24h' },
      ),
      STREAMER_WAIT: env.duration('Long-poll wait per lease request.', { max: '60s' }),
      TELEMETRY_RETENTION: env.duration('Keep raw samples this long (whole chunks dropped); 0 keeps them.'),
      TELEMETRY_RETENTION_1M: env.duration(
        'Keep 1-minute rollups this long (whole days dropped); 0 keeps them.',
      ),
      TELEMETRY_RETENTION_1H: env.duration(
        'Keep 1-hour rollups this long (whole days dropped); 0 keeps them.',
      ),
      TELEMETRY_MAINTENANCE_INTERVAL: env.duration(
        'How often chunks are made ahead and expired data dropped.',
        { min: '1s', max: '1d' },
      ),
      TELEMETRY_CHUNK: env.duration(
        'Length of a chunk of time (compacted as a whole): whole minutes that divide a day, 1m to 1d.',
        { min: '1m', max: '1d', step: '1m', divides: '1d', default: '1h' },
      ),
      TELEMETRY_SLICE: env.duration(
        "Keep hot samples in slices of a chunk this long, each compacted once closed, a closed chunk's slices then merged. Whole minutes that divide TELEMETRY_CHUNK; unset: the whole chunk.",
        { max: '1d', step: '1m', divides: 'TELEMETRY_CHUNK' },
      ),
      TELEMETRY_COMPACT_AFTER: env.duration(
        'Compact a slice once it has been closed this long (at least 10s).',
        { min: '10s', max: '7d' },
      ),
      QUERY_TIMEOUT: env.duration(
        'Longest one REST aggregate (/v1/gpus/.../series) may take, then 503; below the gateway timeout.',
        { min: '100ms', max: '1h' },
      ),
      PROMQL_TIMEOUT: env.duration(
        "Longest a PromQL query may run, waiting for its turn included (a query's timeout parameter only shortens it).",
        { min: '100ms', max: '1h' },
      ),
      PROMQL_MAX_SAMPLES: env.int(
        'Most samples one PromQL query may hold in memory at once, and one REST aggregate may decode.',
        1_000,
        1_000_000_000,
      ),
      PROMQL_MAX_SERIES: env.int(
        'Most series one PromQL selector (or match[] parameter) may touch.',
        1,
        10_000_000,
      ),
      PROMQL_MAX_CONCURRENCY: env.int(
        'PromQL queries evaluated at once, each on a database connection; the rest wait their turn.',
        1,
        256,
      ),
      PROMQL_LOOKBACK_DELTA: env.duration('How far back a PromQL instant selector looks for a sample.', {
        min: '1s',
        max: '1d',
      }),
    },
  },
  collector: {
    port: 8083,
    description: 'Scrapes dcgm-exporter endpoints and publishes samples to the queue.',
    autoscaling: false,
    minReplicas: 1,
    config: {
      QUEUE_URL: env.url("Where the queue answers; default: this release's queue Service."),
      COLLECT_INTERVAL: env.duration('Scrape interval.', { min: '100ms', max: '1d', default: '30s' }),
      COLLECT_TIMEOUT: env.duration(
        'Per-scrape timeout, at most COLLECT_INTERVAL (unset: 10s, or the interval when shorter).',
        { min: '100ms', max: '5m', orZero: true, atMost: 'COLLECT_INTERVAL' },
      ),
      COLLECT_CONCURRENCY: env.int('Parallel scrapes.', 1, 1024),
      COLLECT_MAX_BODY: env.bytes('Largest body read from a target.'),
      COLLECT_SAMPLE_LIMIT: env.int(
        'Most samples per scrape; past it the scrape fails and nothing of it is stored.',
        1,
        10_000_000,
      ),
      COLLECT_LABEL_LIMIT: env.int('Most labels on one sample; past it the scrape fails.', 1, 10_000),
      COLLECT_ALLOW_LINK_LOCAL: env.flag('Allow targets on link-local / cloud metadata addresses.'),
      COLLECT_BUFFER_SAMPLES: env.int('Samples held while the queue is slow or down.', 1, 100_000_000),
      COLLECT_BUFFER_BYTES: env.bytes(
        'Bytes of messages held while the queue is slow or down (metadata included); never taken as less than 1mb.',
      ),
      COLLECT_PUBLISH_BATCH: env.int('Queue messages per publish request.', 1, 1000),
      COLLECT_CSV: str('Replay this dcgm_metrics_*.csv file (mounted into the pod) as live telemetry.'),
      COLLECT_CSV_RATE: env.int('CSV rows per second.', 1, 1_000_000),
      COLLECT_CSV_LOOP: env.flag('Replay the CSV in a loop.'),
      REMOTE_WRITE_MAX_BODY: env.bytes('Largest Prometheus remote write body (snappy-compressed).'),
      REMOTE_WRITE_MAX_DECOMPRESSED: env.bytes(
        'Largest remote write request once decompressed; refused from its length preamble, before decoding.',
      ),
      REMOTE_WRITE_MAX_SERIES: env.int(
        'Most series in one remote write request (past it: 413).',
        1,
        10_000_000,
      ),
      REMOTE_WRITE_MAX_SAMPLES: env.int(
        'Most samples in one remote write request (past it: 413).',
        1,
        10_000_000,
      ),
      REMOTE_WRITE_BODY_TIMEOUT: env.duration(
        'How long a remote write body has to arrive whole; past it 408 (a body that trickles in holds no decoding place).',
        { min: '100ms', max: '5m', default: '10s' },
      ),
      REMOTE_WRITE_CONCURRENCY: env.int(
        'Remote write requests decoded at once; more are answered 503 with Retry-After (Prometheus retries).',
        1,
        1024,
      ),
      TELEMETRY_RETENTION: env.duration(
        "Remote-written samples older than this are refused with 400 (the streamer keeps none); set it as the streamer's. 0: any age.",
      ),
    },
    extra: {
      dcgmExporter: obj(
        {
          targets: { type: 'array', items: env.url('A static scrape URL; {1..64} ranges expand.') },
          dns: { type: 'array', items: env.url('A URL whose host name resolves to every exporter.') },
          headlessService: obj(
            {
              enabled: bool(
                'Create a headless Service over the dcgm-exporter pods and scrape every address behind it.',
              ),
              namespace: str('Namespace of the dcgm-exporter pods (the Service is created there).'),
              selector: stringMap('Labels of the dcgm-exporter pods.'),
              port: integer('Their metrics port.', 1, 65535),
              path: str('Their metrics path.', { pattern: '^/' }),
            },
            { required: ['enabled', 'selector', 'port', 'path'] },
          ),
        },
        {
          description:
            'Where dcgm-exporter answers: static URLs, DNS names, or a headless Service this chart creates.',
        },
      ),
    },
  },
};

const labelSelector = (description) =>
  obj(
    {
      matchLabels: stringMap('Labels the pods (or namespaces) must carry.'),
      matchExpressions: { type: 'array', items: freeObject('A label selector requirement.') },
    },
    { description },
  );

/** A networking.k8s.io/v1 NetworkPolicyPeer. */
const networkPeer = obj(
  {
    podSelector: labelSelector('Pods (in the namespaces of namespaceSelector, else this one).'),
    namespaceSelector: labelSelector('Namespaces; {} is every namespace.'),
    ipBlock: obj(
      {
        cidr: str('CIDR allowed.', { minLength: 1 }),
        except: { type: 'array', items: str('CIDR excluded.') },
      },
      { required: ['cidr'] },
    ),
  },
  { minProperties: 1 },
);

const metricsPeers = (description) => ({
  type: ['array', 'null'],
  description,
  items: networkPeer,
});

function networkPolicySchema(open) {
  return obj({
    enabled: bool(
      'Create a NetworkPolicy for the pods (ingress only); global.networkPolicy.enabled: false turns every one off.',
    ),
    metricsFrom: metricsPeers(
      'Peers allowed on the service port for /metrics; null: global.networkPolicy.metricsFrom, else Prometheus pods in any namespace; [] allows none.',
    ),
    ingressFrom: {
      type: 'array',
      description: open
        ? 'Peers allowed on the service port besides the release and metrics peers; empty: anyone.'
        : "Peers allowed on the service port besides the release's pods and the metrics peers.",
      items: networkPeer,
    },
  });
}

// Each part empty: global.image's (for a service chart), else the default.
const imageSchema = (what, fallback) =>
  obj({
    repository: str(`${what}; empty: ${fallback}ghcr.io/gpu-telemetry/gpu-telemetry.`),
    tag: str(`Image tag; empty: ${fallback}the chart appVersion.`),
    digest: str('Image digest (wins over the tag).', { pattern: '^(sha256:[a-f0-9]{64})?$' }),
    pullPolicy: {
      description: `Image pull policy; empty: ${fallback}IfNotPresent.`,
      enum: ['Always', 'IfNotPresent', 'Never', ''],
    },
  });

/** Secrets to pull the image with: names, or LocalObjectReferences as in a pod spec. */
const imagePullSecrets = {
  type: 'array',
  description: 'Secrets to pull the image with: names, or {name: ...} as in a pod spec.',
  items: {
    anyOf: [
      str('Secret name.', { minLength: 1 }),
      obj({ name: str('Secret name.', { minLength: 1 }) }, { required: ['name'] }),
    ],
  },
};

// A duration as Prometheus takes one (scrape interval and timeout): units from the largest down,
// each at most once (1m30s, 1h, 500ms), or 0.
const PROMETHEUS_DURATION = '^(0|([0-9]+y)?([0-9]+w)?([0-9]+d)?([0-9]+h)?([0-9]+m)?([0-9]+s)?([0-9]+ms)?)$';

/** A pod's volume (core/v1 Volume): a name and a source (none: an emptyDir). */
const volume = {
  type: 'object',
  description: 'A core/v1 Volume: its name and source (secret, configMap, persistentVolumeClaim...).',
  required: ['name'],
  properties: {
    name: str("Volume name, unique in the pod (tmp is the chart's own).", {
      pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$',
      maxLength: 63,
    }),
  },
};

/** A container's volume mount (core/v1 VolumeMount). */
const volumeMount = {
  type: 'object',
  description: 'A core/v1 VolumeMount: the name of a volume and where it is mounted.',
  required: ['name', 'mountPath'],
  properties: {
    name: str('Name of a volume of the pod.', { minLength: 1 }),
    mountPath: str("Where the volume is mounted in the container (/tmp is the chart's own).", {
      minLength: 1,
    }),
    subPath: str('A path within the volume instead of its root.'),
    readOnly: bool('Mount read-only.'),
  },
};

const extraVolumes = (what) => ({
  type: 'array',
  description: `More volumes of ${what} (a CSV file, secrets read through <NAME>_FILE, a Postgres CA file).`,
  items: volume,
});
const extraVolumeMounts = (what) => ({
  type: 'array',
  description: `Mounts of those volumes in ${what}.`,
  items: volumeMount,
});

const migrationsSchema = obj({
  enabled: bool('Run database migrations as a pre-install/pre-upgrade Job.'),
  backoffLimit: integer('Retries of the Job.', 0),
  activeDeadlineSeconds: integer('Deadline of the Job.', 1),
  resources: freeObject('Resources of the Job.'),
  extraEnv: {
    type: 'array',
    description:
      "More env entries of the Job's container (name/value or valueFrom); DATABASE_URL_FILE replaces the chart's DATABASE_URL.",
    items: {
      type: 'object',
      required: ['name'],
      properties: { name: str('Variable name.', { minLength: 1 }) },
    },
  },
  extraVolumes: extraVolumes("the Job's pod"),
  extraVolumeMounts: extraVolumeMounts("the Job's container"),
});

function serviceSchema(name, service) {
  const autoscaling = obj({
    enabled: bool('Create a HorizontalPodAutoscaler (replicaCount is then ignored).'),
    minReplicas: integer('Fewest replicas.', 1),
    maxReplicas: integer('Most replicas.', 1),
    targetCPUUtilizationPercentage: { type: ['integer', 'null'], minimum: 1, maximum: 100 },
    targetMemoryUtilizationPercentage: { type: ['integer', 'null'], minimum: 1, maximum: 100 },
  });
  return {
    $schema: 'http://json-schema.org/draft-07/schema#',
    title: `gpu-telemetry ${name} chart values`,
    description: service.description,
    ...obj({
      global: freeObject('Values shared with every chart of the release (set by the gpu-telemetry chart).'),
      enabled: bool('Install this service (read by the gpu-telemetry chart).'),
      replicaCount: integer(
        name === 'collector'
          ? 'Replicas; they split the targets between them (COLLECTOR_REPLICAS follows it).'
          : 'Replicas when autoscaling is off.',
        service.minReplicas ?? 0,
      ),
      image: imageSchema('Image repository', 'global.image, else '),
      imagePullSecrets,
      containerPort: integer('Port the service listens on (PORT).', 1, 65535),
      service: obj({
        type: { enum: ['ClusterIP', 'NodePort', 'LoadBalancer'] },
        port: integer('Service port.', 1, 65535),
        nodePort: { type: ['integer', 'null'], minimum: 30000, maximum: 32767 },
        annotations: stringMap('Service annotations.'),
      }),
      logLevel: { enum: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] },
      database: obj(
        {
          url: str('postgres:// URL; a Secret is created for it.', { pattern: '^(postgres(ql)?://.+)?$' }),
          existingSecret: str('Secret holding DATABASE_URL (wins over url).'),
          secretKey: str('Key of the URL in the Secret.', { minLength: 1 }),
        },
        {
          description:
            'Where DATABASE_URL comes from; empty: global.database, else the Secret gpu-telemetry-database.',
        },
      ),
      serviceToken: obj(
        {
          existingSecret: str(
            'Secret holding SERVICE_TOKEN (and SERVICE_TOKEN_PREVIOUS during a rotation); default: global.serviceToken.existingSecret, else <release>-service-token.',
          ),
          generate: bool(
            'Generate <release>-service-token when no Secret is named (installed alone; the gpu-telemetry chart makes it once).',
          ),
        },
        { description: 'The credential the services present to each other (SERVICE_TOKEN).' },
      ),
      tracing: obj({
        endpoint: str("OTLP/HTTP endpoint for spans; default: global.tracing (the release's gateway).", {
          pattern: '^(https?://.+)?$',
        }),
      }),
      config: obj(
        { ...COMMON_CONFIG, ...service.config },
        {
          description: 'Environment variables of the service (see .env.example); unknown names are rejected.',
        },
      ),
      extraEnv: {
        type: 'array',
        description: 'More container env entries (name/value or valueFrom).',
        items: {
          type: 'object',
          required: ['name'],
          properties: { name: str('Variable name.', { minLength: 1 }) },
        },
      },
      extraEnvFrom: { type: 'array', items: freeObject('An EnvFromSource.') },
      extraVolumes: extraVolumes('the pod'),
      extraVolumeMounts: extraVolumeMounts("the service's container"),
      resources: freeObject('Container resources.'),
      podSecurityContext: freeObject('Pod security context.'),
      securityContext: freeObject('Container security context.'),
      serviceAccount: obj({
        create: bool('Create a ServiceAccount.'),
        name: str('Its name; default: the full name.'),
        annotations: stringMap('ServiceAccount annotations.'),
      }),
      ...(service.autoscaling ? { autoscaling } : {}),
      podDisruptionBudget: obj({
        enabled: bool('Create a PodDisruptionBudget.'),
        minAvailable: { type: ['integer', 'string', 'null'], pattern: '^\\d+%$', minimum: 0 },
        maxUnavailable: { type: ['integer', 'string', 'null'], pattern: '^\\d+%$', minimum: 0 },
      }),
      networkPolicy: networkPolicySchema(Boolean(service.open)),
      serviceMonitor: obj({
        enabled: bool('Create a Prometheus Operator ServiceMonitor for /metrics.'),
        namespace: str('Its namespace; default: the release namespace.'),
        labels: stringMap('Labels your Prometheus selects ServiceMonitors by.'),
        interval: str('Scrape interval, a Prometheus duration (30s, 1m30s, 1h).', {
          pattern: PROMETHEUS_DURATION,
          minLength: 1,
        }),
        scrapeTimeout: str('Scrape timeout, a Prometheus duration (10s, 1m30s, 500ms).', {
          pattern: PROMETHEUS_DURATION,
          minLength: 1,
        }),
      }),
      migrations: migrationsSchema,
      livenessProbe: freeObject('Timing of the /healthz probe.'),
      readinessProbe: freeObject('Timing of the /readyz probe.'),
      preStopSleepSeconds: integer(
        'Seconds a stopping pod goes on serving before SIGTERM (a preStop sleep), so that load balancers stop sending to it first; 0: none.',
        0,
        300,
      ),
      terminationGracePeriodSeconds: integer(
        'Seconds a stopping pod gets; keep above preStopSleepSeconds + SHUTDOWN_TIMEOUT + 10.',
        1,
      ),
      podAnnotations: stringMap('Pod annotations.'),
      podLabels: stringMap('Pod labels.'),
      nodeSelector: stringMap('Node selector.'),
      tolerations: { type: 'array', items: freeObject('A toleration.') },
      affinity: freeObject('Affinity.'),
      topologySpreadConstraints: { type: 'array', items: freeObject('A topology spread constraint.') },
      priorityClassName: str('PriorityClass name.'),
      ...service.extra,
      'gpu-telemetry-common': freeObject('The shared template library (no values).'),
    }),
  };
}

function umbrellaSchema() {
  const subchart = (name) => ({
    type: 'object',
    description: `Values of the ${name} chart (checked by its own schema).`,
    properties: {
      enabled: bool(`Install the ${name}.`),
      serviceToken: {
        type: 'object',
        description: 'generate: false, since this chart makes the service token Secret.',
      },
    },
  });
  return {
    $schema: 'http://json-schema.org/draft-07/schema#',
    title: 'gpu-telemetry chart values',
    description: 'The whole system: gateway, queue, streamer and collector, and the migration Job.',
    ...obj({
      global: obj({
        image: imageSchema('Image repository of every service that sets none of its own', ''),
        imagePullSecrets,
        database: obj({
          url: str('postgres:// URL for every service; a Secret <release>-database is created.', {
            pattern: '^(postgres(ql)?://.+)?$',
          }),
          existingSecret: str(
            'Secret holding DATABASE_URL (wins over url); default: gpu-telemetry-database.',
          ),
          secretKey: str('Key of the URL in the Secret.', { minLength: 1 }),
        }),
        tracing: obj({
          enabled: bool("Export every service's spans to the gateway's OTLP receiver."),
          endpoint: str('Another OTLP/HTTP endpoint instead.', { pattern: '^(https?://.+)?$' }),
          keySecret: str(
            "Secret (key GATEWAY_OTLP_KEY) with the gateway's span-export key; default: <release>-gateway-otlp-key, generated.",
          ),
          samplerRatio: {
            type: 'number',
            minimum: 0,
            maximum: 1,
            description: 'Share of new traces sampled.',
          },
        }),
        serviceToken: obj({
          existingSecret: str(
            'Secret holding SERVICE_TOKEN (and SERVICE_TOKEN_PREVIOUS during a rotation); default: <release>-service-token, generated and kept.',
          ),
        }),
        networkPolicy: obj({
          enabled: bool(
            'Create the NetworkPolicies of every service (each chart can still turn its own off).',
          ),
          metricsFrom: metricsPeers("Peers allowed to scrape every service's /metrics."),
        }),
      }),
      migrations: migrationsSchema,
      podSecurityContext: freeObject('Pod security context of the migration Job.'),
      securityContext: freeObject('Container security context of the migration Job.'),
      gateway: subchart('gateway'),
      queue: subchart('queue'),
      streamer: subchart('streamer'),
      collector: subchart('collector'),
      'gpu-telemetry-common': freeObject('The shared template library (no values).'),
    }),
  };
}

/** Every chart's schema, by chart directory name. */
function buildSchemas() {
  const schemas = { 'gpu-telemetry': umbrellaSchema() };
  for (const [name, service] of Object.entries(SERVICES)) schemas[name] = serviceSchema(name, service);
  return schemas;
}

/**
 * Per service chart, the range and rules of each duration its service takes, for its templates to
 * check (common.checkDurations reads duration-rules.json: Helm keeps values.schema.json from them).
 */
function buildDurationRules() {
  const rules = {};
  for (const name of Object.keys(SERVICES)) {
    const config = serviceSchema(name, SERVICES[name]).properties.config.properties;
    rules[name] = {};
    for (const [variable, p] of Object.entries(config)) {
      if (!p.pattern?.includes('ms|s|m|h|d')) continue;
      const rule = {
        min: p['x-min'],
        minMs: p['x-min-ms'],
        max: p['x-max'],
        maxMs: p['x-max-ms'],
        step: p['x-step'],
        stepMs: p['x-step-ms'],
        divides: p['x-divides'],
        dividesMs: p['x-divides'] && /^\d/.test(p['x-divides']) ? durationMs(p['x-divides']) : undefined,
        atMost: p['x-at-most'],
        default: p.default,
        defaultMs: p.default ? durationMs(p.default) : undefined,
      };
      if (Object.values(rule).some((value) => value !== undefined)) rules[name][variable] = rule;
    }
  }
  return rules;
}

const render = (schema) => `${JSON.stringify(schema, null, 2)}\n`;

module.exports = { buildSchemas, buildDurationRules, render, HELM_DIR, SERVICES };

if (require.main === module) {
  const write = (file, value) => {
    writeFileSync(file, render(value));
    console.log(`wrote ${path.relative(process.cwd(), file)}`);
  };
  for (const [chart, schema] of Object.entries(buildSchemas()))
    write(path.join(HELM_DIR, chart, 'values.schema.json'), schema);
  for (const [chart, rules] of Object.entries(buildDurationRules()))
    write(path.join(HELM_DIR, chart, 'duration-rules.json'), rules);
}
