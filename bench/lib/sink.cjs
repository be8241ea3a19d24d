// Swallows OTLP exports so the gateway's tracing runs fully without a collector in the way.
require('node:http')
  .createServer((req, res) => {
    if (req.url === '/healthz') return res.writeHead(200).end('{}');
    req.resume();
    req.on('end', () => res.writeHead(200).end());
  })
  .listen(Number(process.env.PORT), '127.0.0.1');
