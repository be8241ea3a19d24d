-- migrate:up

-- API keys of the gateway. Only a SHA-256 of the key is stored; the key itself is shown once,
-- when it is created. `prefix` (the first characters) lets people tell keys apart in listings.
CREATE TABLE gateway_api_keys (
  id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name         text NOT NULL,
  prefix       text NOT NULL,
  key_hash     bytea NOT NULL UNIQUE,
  scopes       text[] NOT NULL CHECK (scopes <@ ARRAY['read', 'publish', 'admin'] AND cardinality(scopes) > 0),
  created_at   timestamptz NOT NULL DEFAULT now(),
  revoked_at   timestamptz,
  last_used_at timestamptz
);

-- migrate:down
DROP TABLE IF EXISTS gateway_api_keys;
