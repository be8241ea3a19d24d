// For projects whose tests run the real OpenTelemetry OTLP exporters: their transport loads
// node:http with import(), so those modules are compiled to require() to run in Jest's CommonJS
// sandbox. Spread into a project's config after the preset.
module.exports = (preset) => ({
  transform: {
    ...preset.transform,
    '/node_modules/@opentelemetry/.+\\.js$': [
      '@swc/jest',
      { jsc: { target: 'es2022' }, module: { type: 'commonjs', ignoreDynamic: false } },
    ],
  },
  transformIgnorePatterns: ['/node_modules/(?!@opentelemetry/)'],
});
