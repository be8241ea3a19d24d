import { DATASET_END_MS, DATASET_START_MS } from './dataset';

/** One expression of the compatibility table. */
export interface CompatQuery {
  query: string;
  /** Prometheus orders this result (sort, topk): compare the order too. */
  ordered?: boolean;
}

const q = (query: string, ordered = false): CompatQuery => ({ query, ordered });

// Grafana's "All" for a multi-value variable, and a selection of two values.
const ALL = '.*';
const SOME_HOSTS = 'host-0|host-2';

/** NVIDIA's DCGM exporter dashboard (grafana/dcgm-exporter-dashboard.json), its variables filled in. */
export const DCGM_DASHBOARD: CompatQuery[] = [ALL, SOME_HOSTS].flatMap((hostname) =>
  [ALL, '0|3'].flatMap((gpu) => {
    const sel = `Hostname=~"${hostname}", gpu=~"${gpu}"`;
    return [
      q(`max(DCGM_FI_DEV_GPU_TEMP{${sel}}) by (Hostname, gpu, uuid)`),
      q(`avg(DCGM_FI_DEV_GPU_TEMP{${sel}})`),
      q(`max(DCGM_FI_DEV_POWER_USAGE{${sel}}) by (Hostname, gpu, uuid)`),
      q(`sum(max(DCGM_FI_DEV_POWER_USAGE{${sel}}) by (gpu))`),
      q(`max(DCGM_FI_DEV_SM_CLOCK{${sel}} * 1000000) by (Hostname, UUID, gpu)`),
      q(`max(DCGM_FI_PROF_GR_ENGINE_ACTIVE{${sel}}) by (Hostname, gpu, GPU_I_ID, GPU_I_PROFILE)`),
      q(`max(DCGM_FI_PROF_PIPE_TENSOR_ACTIVE{${sel}}) by (Hostname, gpu, GPU_I_ID, GPU_I_PROFILE)`),
      q(`max(DCGM_FI_DEV_FB_USED{${sel}}) by (Hostname, gpu, GPU_I_ID, GPU_I_PROFILE)`),
    ];
  }),
);

/** This project's dashboards: fleet, per host, per GPU, and the error panels. */
export const PROJECT_DASHBOARD: CompatQuery[] = [
  q('avg(DCGM_FI_DEV_GPU_UTIL)'),
  q('avg by (Hostname) (DCGM_FI_DEV_GPU_UTIL)'),
  q('avg by (Hostname, gpu) (DCGM_FI_DEV_GPU_UTIL{Hostname=~"host-1"})'),
  q('max by (Hostname, gpu) (DCGM_FI_DEV_GPU_TEMP)'),
  q('max by (Hostname) (DCGM_FI_DEV_MEMORY_TEMP)'),
  q('100 * DCGM_FI_DEV_FB_USED / (DCGM_FI_DEV_FB_USED + DCGM_FI_DEV_FB_FREE)'),
  q(
    'sum by (Hostname) (DCGM_FI_DEV_FB_USED) / sum by (Hostname) (DCGM_FI_DEV_FB_USED + DCGM_FI_DEV_FB_FREE)',
  ),
  q('sum by (Hostname) (DCGM_FI_DEV_POWER_USAGE)'),
  q('sum(DCGM_FI_DEV_POWER_USAGE)'),
  q('avg by (modelName) (DCGM_FI_DEV_POWER_USAGE)'),
  q('rate(DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION[5m]) / 1000'),
  q('sum by (Hostname) (increase(DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION[1h])) / 3.6e9'),
  q('count by (Hostname) (DCGM_FI_DEV_XID_ERRORS != 0)'),
  q('max_over_time(DCGM_FI_DEV_XID_ERRORS[10m]) > 0'),
  q('changes(DCGM_FI_DEV_XID_ERRORS[30m])'),
  q('increase(DCGM_FI_DEV_ECC_SBE_VOL_TOTAL[1h])'),
  q('sum by (Hostname) (increase(DCGM_FI_DEV_ECC_DBE_VOL_TOTAL[30m]))'),
  q('rate(DCGM_FI_DEV_PCIE_REPLAY_COUNTER[5m]) * 60'),
  q('count by (Hostname) (DCGM_FI_DEV_CLOCK_THROTTLE_REASONS > 0)'),
  q('DCGM_FI_DEV_CLOCK_THROTTLE_REASONS % 8 >= 4'),
  q('rate(DCGM_FI_PROF_PCIE_TX_BYTES[5m])'),
  q('sum by (Hostname) (rate(DCGM_FI_PROF_PCIE_RX_BYTES[5m]))'),
  q('sum by (Hostname) (rate(DCGM_FI_PROF_NVLINK_TX_BYTES[5m]) + rate(DCGM_FI_PROF_NVLINK_RX_BYTES[5m]))'),
  q('histogram_quantile(0.99, sum by (le) (rate(dcgm_scrape_duration_seconds_bucket[5m])))'),
  q('histogram_quantile(0.5, sum by (Hostname, le) (rate(dcgm_scrape_duration_seconds_bucket[10m])))'),
  q('rate(dcgm_scrape_duration_seconds_sum[5m]) / rate(dcgm_scrape_duration_seconds_count[5m])'),
  q('count(DCGM_FI_DEV_GPU_UTIL)'),
  q('count by (modelName) (DCGM_FI_DEV_GPU_UTIL)'),
];

/** Selectors, operators, functions and modifiers, one or more expressions each. */
export const LANGUAGE: CompatQuery[] = [
  // Selectors and matchers (regular expressions are anchored at both ends).
  q('DCGM_FI_DEV_GPU_UTIL'),
  q('DCGM_FI_DEV_GPU_UTIL{Hostname="host-2"}'),
  q('DCGM_FI_DEV_GPU_UTIL{Hostname!="host-2", gpu="1"}'),
  q('DCGM_FI_DEV_GPU_UTIL{Hostname=~"host-[01]"}'),
  q('DCGM_FI_DEV_GPU_UTIL{Hostname=~"host"}'),
  q('DCGM_FI_DEV_GPU_UTIL{Hostname=~"HOST-0"}'),
  // Patterns a backtracking engine could loop on: matched by the linear one.
  q('DCGM_FI_DEV_GPU_UTIL{Hostname=~"(host-[0-9]+)+"}'),
  q('DCGM_FI_DEV_GPU_UTIL{Hostname=~"(h|o|s|t|-|[0-9])*1"}'),
  q('DCGM_FI_DEV_GPU_UTIL{modelName=~"(?i)nvidia.*[0-9]+.*", Hostname!~"(.+)+0"}'),
  q('DCGM_FI_DEV_GPU_UTIL{Hostname=~"(?i)HOST-0"}'),
  q('DCGM_FI_DEV_GPU_UTIL{Hostname!~"host-.*"}'),
  q('DCGM_FI_DEV_GPU_UTIL{gpu=~"1|2", modelName=~".*H100.*"}'),
  q('DCGM_FI_DEV_GPU_UTIL{GPU_I_ID=""}'),
  q('DCGM_FI_DEV_GPU_UTIL{GPU_I_ID!=""}'),
  q('{__name__=~"DCGM_FI_DEV_(GPU_UTIL|GPU_TEMP)", Hostname="host-0", gpu="0"}'),
  q('sum by (__name__) ({__name__=~"DCGM_FI_DEV_.*_TEMP"})'),
  q('DCGM_FI_DEV_GPU_UTIL offset 10m'),
  q('DCGM_FI_DEV_GPU_UTIL offset -5m'),
  q(`DCGM_FI_DEV_GPU_UTIL @ ${1717376400 + 1800}`),
  q('DCGM_FI_DEV_GPU_UTIL @ start()'),
  q('DCGM_FI_DEV_GPU_UTIL @ end() offset 1m'),
  q('DCGM_FI_DEV_GPU_UTIL{Hostname="host-0", gpu="0"}[2m]'),
  q('DCGM_FI_DEV_GPU_UTIL{Hostname="host-2", gpu="0"}[10m]'),
  q('DCGM_FI_DEV_POWER_USAGE{Hostname="host-0", gpu="0"}[1m] offset 1m'),
  q('nonexistent_metric'),
  // Arithmetic, comparison, bool.
  q('1 + 2 * 3'),
  q('-2 ^ 2'),
  q('2 ^ 3 ^ 2'),
  q('(1 + 2) / 0'),
  q('0 / 0'),
  q('10 % 3'),
  q('5. + 0X1F - 0x1f'),
  q('5.e2 / 1. * DCGM_FI_DEV_GPU_UTIL{Hostname="host-0"}'),
  q('1_000'),
  q('010. + 017 + 010.e1'),
  q("sum(DCGM_FI_DEV_GPU_UTIL) # it's a comment\n+ 5."),
  q('5.atan2 DCGM_FI_DEV_GPU_UTIL'),
  q('1.5.'),
  q('1 > bool 2'),
  q('42'),
  q('"hello"'),
  q('-DCGM_FI_DEV_GPU_UTIL'),
  q('DCGM_FI_DEV_GPU_UTIL % 7'),
  q('DCGM_FI_DEV_GPU_UTIL ^ 0.5'),
  q('DCGM_FI_DEV_GPU_UTIL atan2 DCGM_FI_DEV_GPU_TEMP'),
  q('DCGM_FI_DEV_GPU_UTIL > 50'),
  q('50 < DCGM_FI_DEV_GPU_UTIL'),
  q('DCGM_FI_DEV_GPU_UTIL > bool 50'),
  q('DCGM_FI_DEV_GPU_UTIL == bool DCGM_FI_DEV_GPU_TEMP'),
  q('DCGM_FI_DEV_GPU_UTIL != DCGM_FI_DEV_GPU_UTIL offset 1m'),
  q('DCGM_FI_DEV_GPU_UTIL - DCGM_FI_DEV_GPU_UTIL offset 5m'),
  q('DCGM_FI_DEV_POWER_USAGE / DCGM_FI_DEV_POWER_USAGE'),
  // Vector matching.
  q('DCGM_FI_DEV_FB_USED / on(Hostname, gpu) DCGM_FI_DEV_FB_FREE'),
  q('DCGM_FI_DEV_FB_USED / ignoring(GPU_I_ID) DCGM_FI_DEV_FB_FREE'),
  q('DCGM_FI_DEV_GPU_UTIL * on(Hostname) group_left avg by (Hostname) (DCGM_FI_DEV_POWER_USAGE)'),
  q('avg by (Hostname) (DCGM_FI_DEV_POWER_USAGE) / on(Hostname) group_right DCGM_FI_DEV_GPU_UTIL'),
  q(
    'DCGM_FI_DEV_GPU_UTIL * on(Hostname) group_left(modelName) max by (Hostname, modelName) (DCGM_FI_DEV_GPU_TEMP)',
  ),
  q('DCGM_FI_DEV_GPU_UTIL + on(Hostname) DCGM_FI_DEV_GPU_TEMP'),
  q('DCGM_FI_DEV_GPU_UTIL + on(Hostname) group_left DCGM_FI_DEV_GPU_TEMP'),
  q(
    'sum by (Hostname, gpu) (DCGM_FI_DEV_GPU_UTIL) + on(Hostname) group_left sum by (Hostname, gpu) (DCGM_FI_DEV_GPU_TEMP)',
  ),
  q('DCGM_FI_DEV_GPU_UTIL > 50 and DCGM_FI_DEV_GPU_TEMP > 55'),
  q('DCGM_FI_DEV_GPU_UTIL > 90 or DCGM_FI_DEV_GPU_TEMP > 80'),
  q('DCGM_FI_DEV_GPU_UTIL unless DCGM_FI_DEV_GPU_UTIL < 30'),
  q('DCGM_FI_DEV_GPU_UTIL and on(Hostname) (DCGM_FI_DEV_XID_ERRORS != 0)'),
  q('DCGM_FI_DEV_GPU_UTIL{Hostname="host-2"} or vector(0)'),
  // Aggregations.
  q('sum without (gpu, UUID, device) (DCGM_FI_DEV_POWER_USAGE)'),
  q('min by (Hostname) (DCGM_FI_DEV_POWER_USAGE)'),
  q('max(DCGM_FI_DEV_POWER_USAGE)'),
  q('stddev by (Hostname) (DCGM_FI_DEV_GPU_UTIL)'),
  q('stdvar(DCGM_FI_DEV_GPU_TEMP)'),
  q('group by (modelName) (DCGM_FI_DEV_GPU_UTIL)'),
  q('quantile(0.9, DCGM_FI_DEV_POWER_USAGE)'),
  q('quantile by (Hostname) (0.25, DCGM_FI_DEV_GPU_UTIL)'),
  q('count_values("util", DCGM_FI_DEV_GPU_UTIL{Hostname="host-0"})'),
  q('count_values by (Hostname) ("reason", DCGM_FI_DEV_CLOCK_THROTTLE_REASONS)'),
  q('topk(3, DCGM_FI_DEV_POWER_USAGE)', true),
  q('topk(3, DCGM_FI_DEV_GPU_UTIL)', true),
  q('topk by (Hostname) (1, DCGM_FI_DEV_GPU_TEMP)', true),
  q('bottomk(2, DCGM_FI_DEV_POWER_USAGE)', true),
  q('bottomk(5, DCGM_FI_DEV_XID_ERRORS)', true),
  q('topk(0, DCGM_FI_DEV_GPU_UTIL)'),
  q('avg(DCGM_FI_DEV_POWER_USAGE)'),
  // Functions over ranges.
  ...['avg', 'min', 'max', 'sum', 'count', 'last', 'present', 'stddev', 'stdvar'].map((f) =>
    q(`${f}_over_time(DCGM_FI_DEV_GPU_TEMP[10m])`),
  ),
  q('avg_over_time(DCGM_FI_DEV_POWER_USAGE{Hostname="host-0"}[10m])'),
  q('quantile_over_time(0.95, DCGM_FI_DEV_GPU_TEMP[30m])'),
  q('quantile_over_time(0, DCGM_FI_DEV_POWER_USAGE[5m])'),
  q('last_over_time(DCGM_FI_DEV_GPU_UTIL{Hostname="host-2"}[15m])'),
  q('absent_over_time(DCGM_FI_DEV_GPU_UTIL{Hostname="host-2"}[5m])'),
  q('absent_over_time(nonexistent_metric{job="x"}[5m])'),
  q('rate(DCGM_FI_PROF_NVLINK_TX_BYTES[2m])'),
  q('rate(DCGM_FI_PROF_PCIE_TX_BYTES{Hostname="host-1"}[10m])'),
  q('irate(DCGM_FI_PROF_PCIE_TX_BYTES[5m])'),
  q('increase(DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION[15m])'),
  q('delta(DCGM_FI_DEV_GPU_TEMP[10m])'),
  q('idelta(DCGM_FI_DEV_GPU_TEMP[5m])'),
  q('deriv(DCGM_FI_DEV_GPU_TEMP[10m])'),
  q('predict_linear(DCGM_FI_DEV_FB_USED[30m], 3600)'),
  q('resets(DCGM_FI_PROF_PCIE_TX_BYTES[30m])'),
  q('changes(DCGM_FI_DEV_MEM_CLOCK[10m])'),
  q('holt_winters(DCGM_FI_DEV_GPU_TEMP[10m], 0.5, 0.5)'),
  q('rate(DCGM_FI_PROF_PCIE_TX_BYTES[5m] offset 30m)'),
  q('rate(DCGM_FI_PROF_PCIE_TX_BYTES[5m] @ end())'),
  // Functions over instant vectors and scalars.
  q('abs(DCGM_FI_DEV_GPU_UTIL - 50)'),
  q('ceil(DCGM_FI_DEV_POWER_USAGE / 7)'),
  q('floor(DCGM_FI_DEV_POWER_USAGE / 7)'),
  q('round(DCGM_FI_DEV_POWER_USAGE)'),
  q('round(DCGM_FI_DEV_POWER_USAGE, 5)'),
  q('round(DCGM_FI_DEV_POWER_USAGE, 0.1)'),
  q('exp(DCGM_FI_DEV_GPU_UTIL / 100)'),
  q('ln(DCGM_FI_DEV_POWER_USAGE)'),
  q('log2(DCGM_FI_DEV_GPU_UTIL)'),
  q('log10(DCGM_FI_DEV_FB_USED)'),
  q('sqrt(DCGM_FI_DEV_GPU_UTIL)'),
  q('sgn(DCGM_FI_DEV_GPU_UTIL - 50)'),
  q('clamp(DCGM_FI_DEV_GPU_UTIL, 20, 80)'),
  q('clamp(DCGM_FI_DEV_GPU_UTIL, 80, 20)'),
  q('clamp_min(DCGM_FI_DEV_GPU_UTIL, 30)'),
  q('clamp_max(DCGM_FI_DEV_GPU_UTIL, 30)'),
  q('timestamp(DCGM_FI_DEV_GPU_UTIL)'),
  q('timestamp(DCGM_FI_DEV_GPU_UTIL offset 1m)'),
  q('timestamp(sum(DCGM_FI_DEV_GPU_UTIL))'),
  q('time()'),
  q('vector(time())'),
  q('scalar(sum(DCGM_FI_DEV_GPU_UTIL))'),
  q('scalar(DCGM_FI_DEV_GPU_UTIL)'),
  q('DCGM_FI_DEV_GPU_UTIL * scalar(count(DCGM_FI_DEV_GPU_UTIL))'),
  q('vector(1)'),
  ...['hour', 'minute', 'month', 'year', 'day_of_month', 'day_of_week', 'day_of_year', 'days_in_month'].map(
    (f) => q(`${f}()`),
  ),
  q('hour(timestamp(DCGM_FI_DEV_GPU_UTIL{gpu="0"}))'),
  q('day_of_week(vector(1717376400))'),
  q('sort(DCGM_FI_DEV_POWER_USAGE{Hostname="host-0"})', true),
  q('sort_desc(DCGM_FI_DEV_POWER_USAGE)', true),
  q('sort(sum by (Hostname) (DCGM_FI_DEV_GPU_UTIL))', true),
  // More than 12 elements with ties: Go's sort.Sort is a pattern-defeating quicksort there, not
  // stable, and ties come out in its order.
  q('sort(DCGM_FI_DEV_MEM_CLOCK)', true),
  q('sort_desc(DCGM_FI_DEV_MEM_CLOCK)', true),
  q('sort(round(DCGM_FI_DEV_GPU_UTIL / 25))', true),
  q('sort_desc(DCGM_FI_DEV_XID_ERRORS)', true),
  q('topk(14, DCGM_FI_DEV_MEM_CLOCK)', true),
  q('bottomk(13, DCGM_FI_DEV_MEM_CLOCK)', true),
  q('topk(16, DCGM_FI_DEV_ECC_SBE_VOL_TOTAL)', true),
  q('label_replace(DCGM_FI_DEV_GPU_UTIL, "host_num", "$1", "Hostname", "host-(\\\\d+)")'),
  q('label_replace(DCGM_FI_DEV_GPU_UTIL, "short", "$1x$2", "modelName", "NVIDIA ([AH])(\\\\d+).*")'),
  q('label_replace(DCGM_FI_DEV_GPU_UTIL, "Hostname", "", "Hostname", ".*")'),
  q('label_replace(DCGM_FI_DEV_GPU_UTIL, "x", "$1", "Hostname", "(")'),
  q('label_join(DCGM_FI_DEV_GPU_UTIL, "id", "/", "Hostname", "gpu")'),
  q('absent(DCGM_FI_DEV_GPU_UTIL{Hostname="nope", gpu="9"})'),
  q('absent(DCGM_FI_DEV_GPU_UTIL)'),
  q('absent(nonexistent_metric{job="a", job="b", instance=~"x.*"})'),
  q('histogram_quantile(0.9, rate(dcgm_scrape_duration_seconds_bucket[5m]))'),
  q('histogram_quantile(0, rate(dcgm_scrape_duration_seconds_bucket[5m]))'),
  q('histogram_quantile(1.5, rate(dcgm_scrape_duration_seconds_bucket[5m]))'),
  q('histogram_quantile(0.5, dcgm_scrape_duration_seconds_bucket)'),
  // Subqueries.
  q('max_over_time(rate(DCGM_FI_PROF_PCIE_TX_BYTES[5m])[30m:1m])'),
  q('avg_over_time(DCGM_FI_DEV_GPU_UTIL[10m:])'),
  q('rate(DCGM_FI_PROF_PCIE_TX_BYTES[5m:30s])'),
  q('min_over_time(sum by (Hostname) (DCGM_FI_DEV_POWER_USAGE)[15m:2m] offset 5m)'),
  q('max_over_time(DCGM_FI_DEV_GPU_TEMP[10m:1m] @ start())'),
  q('sum by (Hostname) (DCGM_FI_DEV_GPU_UTIL)[10m:2m]'),
  // NaN samples, postfix modifiers after operators, and other corners.
  q('sum_over_time(DCGM_FI_DEV_POWER_USAGE{Hostname="host-0"}[10m])'),
  q('max_over_time(DCGM_FI_DEV_POWER_USAGE{Hostname="host-0"}[10m])'),
  q('stddev_over_time(DCGM_FI_DEV_POWER_USAGE{Hostname="host-0"}[10m])'),
  q('deriv(DCGM_FI_DEV_POWER_USAGE{Hostname="host-0"}[5m])'),
  q('quantile(0.5, DCGM_FI_DEV_POWER_USAGE{Hostname="host-0"})'),
  q('topk(2, DCGM_FI_DEV_POWER_USAGE{Hostname="host-0"})', true),
  q('count_values without (gpu, UUID, device) ("clock", DCGM_FI_DEV_MEM_CLOCK)'),
  // Escapes stand for bytes; bytes that are no UTF-8 print as U+FFFD, one each.
  q('label_replace(vector(1), "a", "\\xe2\\x82\\xac\\101\\u00e9\\U0001F600", "", "")'),
  q(
    'label_replace(vector(1), "a", "\\xff\\xe2\\x82!|\\xed\\xa0\\x80|\\xc0\\xaf|\\xf4\\x90\\x80\\x80", "", "")',
  ),
  // Date functions of what a JavaScript Date cannot hold: NaN, infinities, beyond ±8.64e12 s.
  q('hour(vector(NaN))'),
  q('year(vector(-1/0)) + minute(vector(1/0))'),
  q('days_in_month(DCGM_FI_DEV_GPU_UTIL * 1e15)'),
  q('day_of_year(DCGM_FI_DEV_GPU_UTIL * -3e14) + day_of_week(vector(1e19)) + month(vector(-1e19))'),
  q('day_of_month(DCGM_FI_DEV_GPU_TEMP / 0)'),
  // A parameter that changes from step to step, and the value label dropped. (Ties of topk over a
  // computed vector are not compared: a range query's computed series reach Prometheus's topk in
  // the order of a Go map, so which tie wins changes from run to run.)
  q('topk(scalar(count(DCGM_FI_DEV_GPU_UTIL > 50)), DCGM_FI_DEV_GPU_UTIL)', true),
  q('bottomk by (Hostname) (2.9, DCGM_FI_DEV_GPU_UTIL)', true),
  q('quantile by (Hostname) (scalar(count(DCGM_FI_DEV_GPU_UTIL > 50)) / 40, DCGM_FI_DEV_GPU_TEMP)'),
  q('count_values without (util) ("util", round(DCGM_FI_DEV_GPU_UTIL / 10))'),
  q('count(topk by (Hostname) (3, DCGM_FI_DEV_POWER_USAGE))'),
  q('label_join(DCGM_FI_DEV_GPU_UTIL, "GPU_I_ID", ",", "GPU_I_ID", "nonexistent")'),
  q('-DCGM_FI_DEV_GPU_UTIL offset 5m'),
  q('DCGM_FI_DEV_GPU_UTIL - DCGM_FI_DEV_GPU_TEMP offset 5m'),
  q('DCGM_FI_DEV_GPU_UTIL * 2 @ end()'),
  q('rate(DCGM_FI_PROF_PCIE_TX_BYTES[5m:1m] offset 2m)'),
  q('timestamp(DCGM_FI_DEV_GPU_UTIL @ 1717378200 offset 1m)'),
  q('DCGM_FI_DEV_GPU_UTIL{Hostname="host-2"} offset 5m'),
  // Operators and functions evaluated a series at a time: series that come and go, series that
  // meet under one label set at different steps (merged) or at one step (an error).
  q('DCGM_FI_DEV_GPU_UTIL > 80 or DCGM_FI_DEV_GPU_UTIL < 20'),
  q('DCGM_FI_DEV_GPU_UTIL{Hostname="host-2"} or DCGM_FI_DEV_GPU_UTIL offset 10m'),
  q('DCGM_FI_DEV_GPU_UTIL unless DCGM_FI_DEV_GPU_UTIL{Hostname="host-2"}'),
  q('DCGM_FI_DEV_GPU_UTIL and DCGM_FI_DEV_GPU_UTIL{Hostname="host-2"} offset 5m'),
  q('{__name__=~"DCGM_FI_DEV_GPU_(UTIL|TEMP)"} and on(Hostname, gpu) DCGM_FI_DEV_POWER_USAGE > 200'),
  q('{__name__=~"DCGM_FI_DEV_GPU_(UTIL|TEMP)"} * 2'),
  q('{__name__=~"DCGM_FI_DEV_GPU_(UTIL|TEMP)"} > 60'),
  q('abs({__name__=~"DCGM_FI_DEV_GPU_(UTIL|TEMP)"})'),
  q('{__name__=~"DCGM_FI_DEV_GPU_(UTIL|TEMP)"} + DCGM_FI_DEV_POWER_USAGE'),
  q('{__name__=~"DCGM_FI_DEV_GPU_(UTIL|TEMP)"} > bool DCGM_FI_DEV_POWER_USAGE'),
  q('DCGM_FI_DEV_POWER_USAGE - {__name__=~"DCGM_FI_DEV_GPU_(UTIL|TEMP)"}'),
  q('DCGM_FI_DEV_GPU_UTIL > on(Hostname, gpu) DCGM_FI_DEV_GPU_TEMP'),
  q('DCGM_FI_DEV_GPU_UTIL{Hostname="host-2"} / DCGM_FI_DEV_GPU_UTIL offset 10m'),
  q('label_replace({__name__=~"DCGM_FI_DEV_GPU_(UTIL|TEMP)"}, "__name__", "x", "", "")'),
  q('label_replace(DCGM_FI_DEV_GPU_UTIL, "Hostname", "h", "", "")'),
  q('2 ^ DCGM_FI_DEV_GPU_UTIL{Hostname="host-0"} / 1e20'),
  // Errors Prometheus reports.
  q('rate(DCGM_FI_DEV_GPU_UTIL)'),
  q('sum(DCGM_FI_DEV_GPU_UTIL'),
  q('unknown_function(DCGM_FI_DEV_GPU_UTIL)'),
  q('DCGM_FI_DEV_GPU_UTIL{Hostname=~"("}'),
  q('{Hostname=~".*"}'),
  q('1 > 2'),
  q('DCGM_FI_DEV_GPU_UTIL + bool 1'),
  q('sum(DCGM_FI_DEV_GPU_UTIL[5m])'),
  // Matchers that name their values (found through the label index), and ones that only look so.
  q('{UUID="GPU-21000000-aaaa-bbbb-cccc-000000000021"}'),
  q('DCGM_FI_DEV_GPU_UTIL{Hostname=~"(host-1|host-3)", gpu=~"0|1"}'),
  q('DCGM_FI_DEV_GPU_UTIL{Hostname=~"host\\\\-1|host-2", gpu="1", gpu=~"1|2"}'),
  q('DCGM_FI_DEV_GPU_UTIL{Hostname=~"host-1|"}'),
  q('DCGM_FI_DEV_GPU_UTIL{Hostname="host-1", Hostname="host-2"}'),
  q('DCGM_FI_DEV_GPU_UTIL{Hostname=~"host-1|host.2"}'),
  // Chains past the grammar's own limit (lezer gave up ~2,300 characters in): `or` of 600
  // selectors, as a dashboard variable's values expand, and 800 operations in a row.
  q(
    Array.from(
      { length: 600 },
      (_, i) => `DCGM_FI_DEV_GPU_UTIL{Hostname="host-${i % 4}", gpu="${i % 8}", uuid!="u${i}"}`,
    ).join(' or '),
  ),
  q(`DCGM_FI_DEV_GPU_TEMP${' + 1 - 1'.repeat(400)}`),
];

export const COMPAT_QUERIES: CompatQuery[] = [...DCGM_DASHBOARD, ...PROJECT_DASHBOARD, ...LANGUAGE];

const minute = 60_000;
/** The times each expression is evaluated at as an instant query. */
export const INSTANT_TIMES = [
  DATASET_END_MS, // the end of the data
  DATASET_START_MS + 80 * minute, // inside host-2's outage
  DATASET_START_MS + 25 * minute, // the NaN sample
  DATASET_START_MS + 100 * minute + 37_000, // after the GPU removal, between scrapes
  DATASET_START_MS + 47 * minute + 3_000,
];
/** The windows and steps each expression is evaluated over as a range query. */
export const RANGES: [start: number, end: number, step: number][] = [
  [DATASET_START_MS, DATASET_END_MS, minute],
  [DATASET_START_MS + 70 * minute, DATASET_START_MS + 90 * minute, 15_000],
  [DATASET_START_MS + 10 * minute, DATASET_END_MS, 7 * minute + 13_000],
];

/** RANGES as test cases: [label, start, end, step]. */
export const RANGE_CASES = RANGES.map(
  ([s, e, step]) =>
    [`${new Date(s).toISOString()}..${new Date(e).toISOString()} step ${step / 1000}s`, s, e, step] as const,
);
