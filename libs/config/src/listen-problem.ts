/** Why a port could not be opened, and what to change, by the errno's name; `$PORT`/`$HOST` stand for the settings' names. */
const LISTEN_PROBLEMS: Record<string, string> = {
  EADDRINUSE:
    'the port is already in use (EADDRINUSE); stop the process that holds it, or set $PORT to a free port',
  EACCES: 'permission denied (EACCES); set $PORT to a port this user may open (1024 or above)',
  EADDRNOTAVAIL:
    '$HOST is not an address of this machine (EADDRNOTAVAIL); set $HOST to a local address, ' +
    'or leave it unset to listen on every address',
};

/** The settings a server's address is read from, named as the user sets them. */
export interface ListenSettings {
  /** The port setting's name, e.g. PORT. */
  port: string;
  /** The address setting's name, e.g. HOST. */
  host: string;
}

/**
 * Why a server could not listen on `host`:`port` (an unset host: every address), as one line naming
 * the address and the setting to change; undefined for a failure it does not explain.
 */
export function listenProblem(
  code: string | undefined,
  host: string | undefined,
  port: number,
  settings: ListenSettings = { port: 'PORT', host: 'HOST' },
): string | undefined {
  const problem = LISTEN_PROBLEMS[code ?? ''];
  if (!problem) return undefined;
  const where = host ? `${host.includes(':') ? `[${host}]` : host}:${port}` : `port ${port} (every address)`;
  const named = problem.replaceAll('$PORT', settings.port).replaceAll('$HOST', settings.host);
  return `cannot listen on ${where}: ${named}`;
}
