import { readFileSync } from 'node:fs';
import path from 'node:path';

const envExample = readFileSync(path.resolve(__dirname, '../../../.env.example'), 'utf8');

const hasLine = (key: string) => new RegExp(`^#? ?${key}=`, 'm').test(envExample);

/**
 * `<owner>: <VAR> documented` when .env.example has a line `VAR=` or `# VAR=`, else `... missing`.
 * `<VAR>_FILE` counts as documented with VAR: .env.example says every variable can be read from a file.
 */
export function documentedIn(owner: string, key: string): string {
  const documented = hasLine(key) || (key.endsWith('_FILE') && hasLine(key.slice(0, -'_FILE'.length)));
  return `${owner}: ${key} ${documented ? 'documented' : 'missing'}`;
}
