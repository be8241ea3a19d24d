import { readFileSync } from 'node:fs';
import path from 'node:path';

const envExample = readFileSync(path.resolve(__dirname, '../../../.env.example'), 'utf8');

/** `<owner>: <VAR> documented` when .env.example has a line `VAR=` or `# VAR=`, else `... missing`. */
export function documentedIn(owner: string, key: string): string {
  return `${owner}: ${key} ${new RegExp(`^#? ?${key}=`, 'm').test(envExample) ? 'documented' : 'missing'}`;
}
