import pg from 'pg';
import { startPostgres, postgresCpuMicros } from './lib/harness.mjs';
const postgres = await startPostgres();
const url = await postgres.createDatabase('exp', true);
const c = new pg.Client({ connectionString: url }); await c.connect();
const sample = {uuid:'5b8f0d3e-8a8c-5f7e-9d2c-1a2b3c4d5e6f',gpuId:'GPU-ef7fe9c4-4a3e-2b1d-9c8a-7f6e5d4c3b2a',gpuIndex:3,device:'nvidia3',modelName:'NVIDIA H100 80GB HBM3',hostname:'bench-host-1',metricName:'DCGM_FI_DEV_GPU_UTIL',value:42.5,timestamp:'2026-11-23T16:00:00.000Z',container:null,pod:null,namespace:null,labels:{DCGM_FI_DRIVER_VERSION:'535.129.03',Hostname:'bench-host-1'}};
const mk = () => ({ id: crypto.randomUUID(), payload: { source: 'x', samples: Array.from({length:320},(_,i)=>({...sample, value:i*1.37, uuid: crypto.randomUUID()})) } });
const N = 320; // messages
const batches = []; for (let i=0;i<N;i+=16) batches.push(Array.from({length:16}, mk));
let t = performance.now(); const bodies = batches.map(b => JSON.stringify({messages:b})); 
t = performance.now(); const parsed = bodies.map(b => JSON.parse(b)); console.log('node JSON.parse ms/msg', ((performance.now()-t)/N).toFixed(3), 'bytes/msg', bodies[0].length/16);
t = performance.now(); const strs = parsed.map(p => p.messages.map(m => JSON.stringify(m.payload))); console.log('node stringify payloads ms/msg', ((performance.now()-t)/N).toFixed(3));
async function run(label, setup, fn) {
  await c.query('TRUNCATE queue_messages'); if (setup) await c.query(setup);
  const cpu0 = postgresCpuMicros(); const t0 = performance.now();
  for (let i = 0; i < batches.length; i++) await fn(i);
  console.log(label.padEnd(40), 'pg cpu µs/msg', ((postgresCpuMicros()-cpu0)/N).toFixed(0), 'wall ms/msg', ((performance.now()-t0)/N).toFixed(2));
}
const current = `WITH input AS (SELECT coalesce(((e -> 'id') #>> '{}')::uuid, gen_random_uuid()) AS msg_uuid, e -> 'payload' AS payload, n FROM json_array_elements($2::json -> 'messages') WITH ORDINALITY AS t(e, n)),
 inserted AS (INSERT INTO queue_messages (topic, msg_uuid, payload) SELECT $1, msg_uuid, payload FROM input ON CONFLICT (topic, msg_uuid) DO NOTHING RETURNING msg_uuid)
 SELECT (SELECT array_agg(msg_uuid::text ORDER BY n) FROM input) AS ids, (SELECT count(*)::int FROM inserted) AS accepted`;
const arrays = `INSERT INTO queue_messages (topic, msg_uuid, payload) SELECT $1, u, p::json FROM unnest($2::uuid[], $3::text[]) AS t(u, p) ON CONFLICT (topic, msg_uuid) DO NOTHING RETURNING msg_uuid`;
for (let round = 0; round < 2; round++) {
await run('current (batch json)', null, (i) => c.query(current, ['t', bodies[i]]));
await run('arrays, json column', null, (i) => c.query(arrays, ['t', parsed[i].messages.map(m=>m.id), strs[i]]));
await run('arrays, json column, external', 'ALTER TABLE queue_messages ALTER COLUMN payload SET STORAGE EXTERNAL', (i) => c.query(arrays, ['t', parsed[i].messages.map(m=>m.id), strs[i]]));
await c.query('ALTER TABLE queue_messages ALTER COLUMN payload SET STORAGE EXTENDED');
}
await c.query('DROP FUNCTION IF EXISTS queue_lease CASCADE');
await c.query('ALTER TABLE queue_messages ALTER COLUMN payload TYPE text');
const arraysText = arrays.replace('p::json', 'p');
await run('arrays, text column', null, (i) => c.query(arraysText, ['t', parsed[i].messages.map(m=>m.id), strs[i]]));
await run('arrays, text column, external', 'ALTER TABLE queue_messages ALTER COLUMN payload SET STORAGE EXTERNAL', (i) => c.query(arraysText, ['t', parsed[i].messages.map(m=>m.id), strs[i]]));
await c.end(); await postgres.stop();
