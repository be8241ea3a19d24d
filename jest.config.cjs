// Root Jest config: every project's tests in one run, so one PostgreSQL serves them all and the
// summary reporter can print the totals line CI reads.
module.exports = {
  projects: [
    '<rootDir>/apps/*/jest.config.cjs',
    '<rootDir>/libs/*/jest.config.cjs',
    '<rootDir>/deploy/jest.config.cjs',
  ],
  testTimeout: 30_000,
  reporters: ['default', '<rootDir>/tools/jest/summary-reporter.cjs'],
};
