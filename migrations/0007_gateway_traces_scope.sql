-- migrate:up

-- A fourth scope, `traces`: what a span exporter needs to send to the gateway's OTLP receiver
-- (POST /v1/traces), and nothing else.
ALTER TABLE gateway_api_keys DROP CONSTRAINT gateway_api_keys_scopes_check;
ALTER TABLE gateway_api_keys ADD CONSTRAINT gateway_api_keys_scopes_check
  CHECK (scopes <@ ARRAY['read', 'publish', 'admin', 'traces'] AND cardinality(scopes) > 0);

-- migrate:down
DELETE FROM gateway_api_keys WHERE 'traces' = ANY (scopes);
ALTER TABLE gateway_api_keys DROP CONSTRAINT gateway_api_keys_scopes_check;
ALTER TABLE gateway_api_keys ADD CONSTRAINT gateway_api_keys_scopes_check
  CHECK (scopes <@ ARRAY['read', 'publish', 'admin'] AND cardinality(scopes) > 0);
