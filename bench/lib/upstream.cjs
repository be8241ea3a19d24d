// A small JSON upstream for bench:gateway, in its own process.
const http = require('node:http');
const body = JSON.stringify({
  gpus: [{ id: 'GPU-5fd4f087-86f3-7a43-b711-4771313afc50', index: 0, hostname: 'node-1' }],
  nextCursor: null,
});
const server = http.createServer((req, res) => {
  if (req.url === '/healthz') return res.writeHead(200).end('{"status":"ok"}');
  res
    .writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
    .end(body);
});
server.keepAliveTimeout = 65_000;
server.listen(Number(process.env.PORT), '127.0.0.1');
