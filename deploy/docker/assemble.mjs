#!/usr/bin/env node
// node deploy/docker/assemble.mjs <dir>   (npm run image:assemble -- <dir>)
//
// Assembles the tree the image runs, the same one the boot test starts: the Dockerfile's build
// stage runs this script into /out and the final stage copies /out to /app. <dir> gets
//
//   bin/gpu-telemetry            the entrypoint (gateway|queue|streamer|collector|simulator|migrate)
//   apps/<service>/dist          the four services, built
//   libs/dcgm-simulator/dist     the simulated dcgm-exporter fleet (`simulator`), built
//   libs/<lib>/dist              the workspace libs they depend on, built
//   */*/package.json             every workspace manifest (npm ci wants them all; the links use them)
//   node_modules/                production dependencies only (npm ci --omit=dev); the workspace
//                                links point at the folders above, relative, so the tree can move
//   migrations/                  the SQL that `migrate up` applies
//
// Nothing in <dir> refers back to this checkout.
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const SCOPE = '@gpu-telemetry/';
/** What the entrypoint runs: the four services and the simulator, each with the tsconfig that builds it. */
const SHIPPED = {
  [`${SCOPE}gateway`]: 'apps/gateway/tsconfig.app.json',
  [`${SCOPE}queue`]: 'apps/queue/tsconfig.app.json',
  [`${SCOPE}streamer`]: 'apps/streamer/tsconfig.app.json',
  [`${SCOPE}collector`]: 'apps/collector/tsconfig.app.json',
  [`${SCOPE}dcgm-simulator`]: 'libs/dcgm-simulator/tsconfig.lib.json',
};
/**
 * Settings an `npm run` passes down in the environment that would change what the nested npm ci
 * installs, or where: this install is always the whole production tree of <dir>.
 */
const NPM_ENV_IGNORED =
  /^npm_config_(workspaces?|include_workspace_root|omit|include|production|global|prefix|local_prefix|dry_run)$/i;

const out = process.argv[2];
if (!out || process.argv.length > 3) {
  console.error('usage: node deploy/docker/assemble.mjs <dir>   (an empty or new folder)');
  process.exit(2);
}
const target = path.resolve(out);
if (existsSync(target) && readdirSync(target).length > 0) {
  console.error(`${target} is not empty: assemble into a new folder`);
  process.exit(2);
}
const started = Date.now();

// 1. Build the services and the simulator and, through their project references, the libs they use.
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
run(process.execPath, [tsc, '-b', ...Object.values(SHIPPED)], root);

// 2. Every workspace's manifest; the built output of the services, the simulator and the libs they need.
const workspaces = workspaceFolders();
for (const folder of workspaces.values()) {
  mkdirSync(path.join(target, folder), { recursive: true });
  copyFileSync(path.join(root, folder, 'package.json'), path.join(target, folder, 'package.json'));
}
for (const name of shippedPackages(workspaces)) {
  const folder = workspaces.get(name);
  const dist = path.join(root, folder, 'dist');
  if (!existsSync(dist)) throw new Error(`${folder}/dist is missing after the build`);
  // JavaScript and its source maps (stack traces name the .ts lines); no declarations, no build info.
  cpSync(dist, path.join(target, folder, 'dist'), {
    recursive: true,
    filter: (file) => !/\.(d\.ts|d\.ts\.map|tsbuildinfo)$/.test(file),
  });
}

// 3. Production dependencies, exactly as the lockfile pins them. No install scripts: nothing the
// services need has one. --prefer-offline: the tarballs are in the npm cache after the full install.
copyFileSync(path.join(root, 'package.json'), path.join(target, 'package.json'));
copyFileSync(path.join(root, 'package-lock.json'), path.join(target, 'package-lock.json'));
const npmEnv = Object.fromEntries(Object.entries(process.env).filter(([key]) => !NPM_ENV_IGNORED.test(key)));
run(
  'npm',
  [
    'ci',
    '--prefix',
    target,
    '--omit=dev',
    '--ignore-scripts',
    '--prefer-offline',
    '--no-audit',
    '--no-fund',
    '--loglevel=error',
  ],
  target,
  npmEnv,
);

// 4. The schema and the entrypoint.
cpSync(path.join(root, 'migrations'), path.join(target, 'migrations'), {
  recursive: true,
  filter: (file) => !file.endsWith('.md'),
});
mkdirSync(path.join(target, 'bin'), { recursive: true });
copyFileSync(path.join(root, 'deploy/docker/entrypoint.sh'), path.join(target, 'bin/gpu-telemetry'));
chmodSync(path.join(target, 'bin/gpu-telemetry'), 0o755);

console.log(`assembled ${target} in ${((Date.now() - started) / 1000).toFixed(1)} s`);

function run(command, args, cwd, env = process.env) {
  const result = spawnSync(command, args, { cwd, env, stdio: 'inherit' });
  if (result.error) throw result.error;
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} exited with ${result.status}`);
}

/** Workspace package name -> its folder, from the root manifest's `dir/*` patterns. */
function workspaceFolders() {
  const folders = new Map();
  for (const pattern of JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')).workspaces) {
    if (!/^[\w.-]+\/\*$/.test(pattern))
      throw new Error(`workspace pattern "${pattern}" is not of the form dir/*`);
    const parent = pattern.slice(0, -2);
    for (const entry of readdirSync(path.join(root, parent), { withFileTypes: true })) {
      const manifest = path.join(root, parent, entry.name, 'package.json');
      if (!entry.isDirectory() || !existsSync(manifest)) continue;
      folders.set(JSON.parse(readFileSync(manifest, 'utf8')).name, `${parent}/${entry.name}`);
    }
  }
  return folders;
}

/** The shipped packages and every workspace package their production dependencies reach. */
function shippedPackages(workspaces) {
  const shipped = new Set();
  const visit = (name) => {
    if (shipped.has(name)) return;
    const folder = workspaces.get(name);
    if (!folder) throw new Error(`${name} is not a workspace package`);
    shipped.add(name);
    const { dependencies = {} } = JSON.parse(readFileSync(path.join(root, folder, 'package.json'), 'utf8'));
    for (const dependency of Object.keys(dependencies)) if (dependency.startsWith(SCOPE)) visit(dependency);
  };
  for (const name of Object.keys(SHIPPED)) visit(name);
  return shipped;
}
