-- migrate:up

-- A fifth scope, `consume` (lease, ack, nack, extend, release), split from `publish`, which now
-- only publishes. Keys that could publish before could consume too: they keep both, so running
-- consumers do not start failing on upgrade. Revoke and re-create a key to drop `consume`.
ALTER TABLE gateway_api_keys DROP CONSTRAINT gateway_api_keys_scopes_check;
ALTER TABLE gateway_api_keys ADD CONSTRAINT gateway_api_keys_scopes_check
  CHECK (scopes <@ ARRAY['read', 'publish', 'consume', 'admin', 'traces'] AND cardinality(scopes) > 0);
UPDATE gateway_api_keys SET scopes = scopes || ARRAY['consume']
WHERE 'publish' = ANY (scopes) AND NOT 'consume' = ANY (scopes);

-- The queue topics a key may reach: topic names, or prefixes ending in `*` (`jobs.*`). NULL: every
-- topic and every route its scopes allow. A key limited to topics reaches the queue routes only.
ALTER TABLE gateway_api_keys ADD COLUMN topics text[]
  CHECK (topics IS NULL OR (cardinality(topics) > 0 AND NOT scopes && ARRAY['admin', 'traces']));

-- migrate:down
-- Dropping the column would widen what topic-limited keys may reach: they are deleted instead.
-- `consume` folds back into `publish`, which included it before.
DELETE FROM gateway_api_keys WHERE topics IS NOT NULL;
ALTER TABLE gateway_api_keys DROP COLUMN topics;
UPDATE gateway_api_keys
SET scopes = ARRAY(SELECT DISTINCT unnest(array_replace(scopes, 'consume', 'publish')) ORDER BY 1)
WHERE 'consume' = ANY (scopes);
ALTER TABLE gateway_api_keys DROP CONSTRAINT gateway_api_keys_scopes_check;
ALTER TABLE gateway_api_keys ADD CONSTRAINT gateway_api_keys_scopes_check
  CHECK (scopes <@ ARRAY['read', 'publish', 'admin', 'traces'] AND cardinality(scopes) > 0);
