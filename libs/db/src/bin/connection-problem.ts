import { maskedUrl } from '@gpu-telemetry/config';

const LOCAL_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]', '::1', '']);

/** The host a database URL names, as URL parsing gives it (`[::1]` for IPv6), or '' when it names none. */
function hostOf(url: string): string {
  try {
    return new URL(url).hostname;
  } catch {
    return '';
  }
}

/** An errno's name, from the error or, where Node tried several addresses, from the first it tried. */
function codeOf(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const { code, errors } = error as { code?: unknown; errors?: unknown };
  if (typeof code === 'string') return code;
  return Array.isArray(errors) ? codeOf(errors[0]) : undefined;
}

/**
 * What to tell someone whose migration could not reach the database: the URL tried (password
 * masked), what went wrong and what to do about it. Undefined for an error that is not about
 * reaching the database, which is reported as it is.
 */
export function connectionProblem(error: unknown, url: string): string | undefined {
  const where = maskedUrl(url);
  const local = LOCAL_HOSTS.has(hostOf(url));
  const elsewhere = 'or set DATABASE_URL to the Postgres to migrate';
  switch (codeOf(error)) {
    case 'ECONNREFUSED':
      return local
        ? `cannot connect to Postgres at ${where}: connection refused, nothing is listening there. ` +
            `Start the development database with \`npm run db:start\` (or \`npm start\`), ${elsewhere}.`
        : `cannot connect to Postgres at ${where}: connection refused. ` +
            `Check that Postgres is running there, ${elsewhere}.`;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `cannot connect to Postgres at ${where}: the host name does not resolve. Check DATABASE_URL.`;
    case 'ETIMEDOUT':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return (
        `cannot connect to Postgres at ${where}: the host cannot be reached (${codeOf(error)}). ` +
        `Check the network, ${elsewhere}.`
      );
    case '28P01':
    case '28000':
      return `cannot connect to Postgres at ${where}: the server refused the user or password. Check DATABASE_URL.`;
    case '3D000':
      return (
        `cannot connect to Postgres at ${where}: the database does not exist. ` + `Create it, ${elsewhere}.`
      );
    default:
      return undefined;
  }
}
