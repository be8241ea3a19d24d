import { cpSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { buildDependencies } from '../../tools/helm.cjs';

const HELM = path.resolve(__dirname, '../../helm');

/**
 * A copy of deploy/helm in a new temporary folder (named from `prefix`) with its file://
 * dependencies vendored, so that a test never writes into the checkout. The caller removes it.
 */
export function copyCharts(prefix: string): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  cpSync(HELM, dir, {
    recursive: true,
    filter: (source) => !/[/\\]charts([/\\]|$)|Chart\.lock$/.test(path.relative(HELM, source)),
  });
  buildDependencies(dir);
  return dir;
}
