/**
 * A URL's password, up to the last `@` before the path (where URL parsing ends the user
 * information, so a raw `@` in the password is masked with it, and so are `?` and `#`, which a
 * password written unescaped may hold).
 */
const USERINFO_PASSWORD = /(\/\/[^:/?#@\s]*:)[^/\s]*@/g;
/** `?password=...` or `&password=...` in a URL's query (pg reads its settings from there too). */
const QUERY_PASSWORD = /([?&]password=)[^&#]*/gi;
/** `password=...` in a key=value connection string, quoted (`password='a b'`) or not. */
const KEYWORD_PASSWORD = /((?:^|\s)password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)/gi;

/**
 * A URL or connection string fit to print: every password in it replaced by `***`, the rest
 * exactly as given (not normalised by URL parsing, so it reads as the setting it came from).
 */
export function maskedUrl(text: string): string {
  return text
    .replace(USERINFO_PASSWORD, '$1***@')
    .replace(QUERY_PASSWORD, '$1***')
    .replace(KEYWORD_PASSWORD, '$1***');
}
