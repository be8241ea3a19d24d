import type { IncomingHttpHeaders } from 'node:http';

const UTF8_WITHOUT_DASH = /;\s*charset\s*=\s*("?)utf8\1(?=\s*(;|$))/i;

/**
 * A body declared `charset=utf8` (a common spelling of UTF-8, which publish takes) is declared
 * `utf-8` instead, the one spelling the JSON body parser knows: every route reads UTF-8 alike.
 */
export function spellUtf8AsTheParserDoes(headers: IncomingHttpHeaders): void {
  const type = headers['content-type'];
  if (type && UTF8_WITHOUT_DASH.test(type))
    headers['content-type'] = type.replace(UTF8_WITHOUT_DASH, '; charset=utf-8');
}
