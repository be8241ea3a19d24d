import { maskedUrl } from './masked-url';

describe('maskedUrl', () => {
  it.each([
    [
      'postgres://postgres:secret@127.0.0.1:54329/gpu_telemetry',
      'postgres://postgres:***@127.0.0.1:54329/gpu_telemetry',
    ],
    ['postgres://app@db:5432/telemetry', 'postgres://app@db:5432/telemetry'],
    ['postgres://db/telemetry?user=app&password=s3cret', 'postgres://db/telemetry?user=app&password=***'],
    [
      'postgres://db/telemetry?password=s3cret&sslmode=require',
      'postgres://db/telemetry?password=***&sslmode=require',
    ],
    ['host=db user=app password=s3cret dbname=telemetry', 'host=db user=app password=*** dbname=telemetry'],
    ["host=db password='a secret' dbname=x", 'host=db password=*** dbname=x'],
    // URL parsing ends the user information at the last @, so a raw @ in a password is part of it.
    ['postgres://app:p@ss@db:5432/x', 'postgres://app:***@db:5432/x'],
    ['postgres://:secret@db/x', 'postgres://:***@db/x'],
    // Written unescaped, a password may hold what would end a URL's authority.
    ['postgres://app:s3cr#t@db/x', 'postgres://app:***@db/x'],
    ['postgres://app:a?b@db/x', 'postgres://app:***@db/x'],
    ['http://u:pa#ss@queue:8081', 'http://u:***@queue:8081'],
    ['mysql://root:hunter2@db/x', 'mysql://root:***@db/x'],
    ['http://u:a@b/m,http://u:c@d/m', 'http://u:***@b/m,http://u:***@d/m'],
  ])('prints %s as %s', (text, shown) => {
    expect(maskedUrl(text)).toBe(shown);
  });

  it.each([
    'http://a:9400/metrics',
    'HTTP://Host:9400/a b?x=1#y',
    'postgres://db',
    '30',
    'http://host:9400/path?next=a@b',
  ])('leaves %s as given', (text) => {
    expect(maskedUrl(text)).toBe(text);
  });
});
