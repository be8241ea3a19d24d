const preset = require('../../jest.preset.cjs');

// Unit tests only: the engine needs no database and no Prometheus. The comparison against a real
// Prometheus lives in jest.compat.config.cjs (`npm run test:compat`).
module.exports = {
  ...preset,
  displayName: 'promql',
  rootDir: __dirname,
  testPathIgnorePatterns: ['/node_modules/', '<rootDir>/src/compat/'],
};
