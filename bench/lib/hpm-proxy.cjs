// The common Node peer for bench:gateway: Express 5 + http-proxy-middleware.
const express = require('express');
const http = require('node:http');
const { createProxyMiddleware } = require('http-proxy-middleware');
const app = express();
app.get('/healthz', (_req, res) => res.json({ status: 'ok' }));
app.use(
  '/api/v1/gpus',
  createProxyMiddleware({
    target: `${process.env.UPSTREAM}/v1/gpus`,
    changeOrigin: true,
    agent: new http.Agent({ keepAlive: true, maxSockets: 128 }),
  }),
);
app.listen(Number(process.env.PORT), '127.0.0.1');
