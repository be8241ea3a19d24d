import baseConfig from '../../eslint.config.mjs';

export default [
  ...baseConfig,
  {
    // The end-to-end suite composes real services: it may import their app factories, and the
    // streamer's test data writer (stored telemetry for the Prometheus API comparison).
    files: ['**/*.ts'],
    rules: {
      '@nx/enforce-module-boundaries': [
        'error',
        {
          allow: [
            '@gpu-telemetry/queue/app',
            '@gpu-telemetry/gateway/app',
            '@gpu-telemetry/streamer/app',
            '@gpu-telemetry/collector/app',
            '@gpu-telemetry/streamer/testing',
          ],
          depConstraints: [{ sourceTag: 'type:e2e', onlyDependOnLibsWithTags: ['type:app', 'type:lib'] }],
        },
      ],
    },
  },
];
