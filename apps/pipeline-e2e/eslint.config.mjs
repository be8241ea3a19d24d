import baseConfig from '../../eslint.config.mjs';

export default [
  ...baseConfig,
  {
    // The end-to-end suite composes real services: it may import their app factories.
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
          ],
          depConstraints: [{ sourceTag: 'type:e2e', onlyDependOnLibsWithTags: ['type:app', 'type:lib'] }],
        },
      ],
    },
  },
];
