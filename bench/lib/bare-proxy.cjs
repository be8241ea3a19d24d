// The floor of a Node proxy: node:http in, an undici pool out, no features at all. Measured by
// bench:gateway to show what any gateway written on node:http + undici pays before doing anything.
const { createServer } = require('node:http');
const { Pool } = require('undici');

const pool = new Pool(process.env.UPSTREAM, { connections: 64 });
createServer(async (req, res) => {
  if (req.url === '/healthz') return res.end('ok');
  try {
    const upstream = await pool.request({ path: req.url.replace(/^\/api/, ''), method: req.method });
    res.writeHead(upstream.statusCode, {
      'content-type': upstream.headers['content-type'],
      'content-length': upstream.headers['content-length'],
    });
    upstream.body.pipe(res);
  } catch {
    res.writeHead(502).end();
  }
}).listen(Number(process.env.PORT), '127.0.0.1');
