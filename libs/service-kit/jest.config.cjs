const preset = require('../../jest.preset.cjs');

module.exports = {
  ...preset,
  displayName: 'service-kit',
  rootDir: __dirname,
  // The OTLP exporter's transport loads node:http with import(); compile those modules to
  // require() so they run in Jest's CommonJS sandbox.
  transform: {
    ...preset.transform,
    '/node_modules/@opentelemetry/.+\\.js$': [
      '@swc/jest',
      { jsc: { target: 'es2022' }, module: { type: 'commonjs', ignoreDynamic: false } },
    ],
  },
  transformIgnorePatterns: ['/node_modules/(?!@opentelemetry/)'],
};
