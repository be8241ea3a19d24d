-- migrate:up

-- An inverted index of the series' labels, as Prometheus keeps postings: a selector's label
-- matchers that name values (`UUID="GPU-…"`, `Hostname=~"a|b"`) find their series through it
-- instead of reading every series of the metric. jsonb_path_ops: only containment (@>) is asked.
-- fastupdate off: a new series goes straight into the index rather than into a pending list that
-- every search would read until a vacuum merges it (a fleet's first scrape adds its series at once,
-- and later ones are rare).
CREATE INDEX telemetry_series_labels_idx ON telemetry_series USING gin (prom_labels jsonb_path_ops)
  WITH (fastupdate = off);

-- Every (label, value) pair some series has, so /api/v1/labels and /api/v1/label/<name>/values
-- read a few index pages instead of every series' labels. Kept by the triggers below on every
-- insert into and delete from telemetry_series, whoever writes it.
CREATE TABLE telemetry_label_values (
  name  text NOT NULL,
  value text NOT NULL,
  PRIMARY KEY (name, value)
);
INSERT INTO telemetry_label_values (name, value)
SELECT DISTINCT l.key, l.value FROM telemetry_series s, jsonb_each_text(s.prom_labels) AS l
WHERE l.value <> '';

-- A new series' pairs, added in one order (name, value) by every writer, so two streamers adding
-- the same pairs wait for each other rather than deadlock. The shared lock lets inserts run
-- together and keeps them apart from a prune (below), which could otherwise remove a pair that a
-- series not yet committed has.
CREATE FUNCTION telemetry_label_values_add() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_advisory_xact_lock_shared(hashtext('telemetry_label_values'));
  INSERT INTO telemetry_label_values (name, value)
  SELECT DISTINCT l.key, l.value FROM new_series s, jsonb_each_text(s.prom_labels) AS l
  WHERE l.value <> ''
  ORDER BY 1, 2
  ON CONFLICT DO NOTHING;
  RETURN NULL;
END
$$;
CREATE TRIGGER telemetry_label_values_add AFTER INSERT ON telemetry_series
  REFERENCING NEW TABLE AS new_series
  FOR EACH STATEMENT EXECUTE FUNCTION telemetry_label_values_add();

-- The pairs of deleted series that no series has any more. Runs after the delete, so the series
-- still there are what it sees; the exclusive lock waits for inserts in flight to commit first.
CREATE FUNCTION telemetry_label_values_prune() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_advisory_xact_lock(hashtext('telemetry_label_values'));
  DELETE FROM telemetry_label_values v
  USING (SELECT DISTINCT l.key, l.value FROM old_series s, jsonb_each_text(s.prom_labels) AS l) AS gone
  WHERE v.name = gone.key AND v.value = gone.value
    AND NOT EXISTS (SELECT 1 FROM telemetry_series s WHERE s.prom_labels @> jsonb_build_object(v.name, v.value));
  RETURN NULL;
END
$$;
CREATE TRIGGER telemetry_label_values_prune AFTER DELETE ON telemetry_series
  REFERENCING OLD TABLE AS old_series
  FOR EACH STATEMENT EXECUTE FUNCTION telemetry_label_values_prune();

CREATE FUNCTION telemetry_label_values_clear() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  TRUNCATE telemetry_label_values;
  RETURN NULL;
END
$$;
CREATE TRIGGER telemetry_label_values_clear AFTER TRUNCATE ON telemetry_series
  FOR EACH STATEMENT EXECUTE FUNCTION telemetry_label_values_clear();

-- migrate:down
DROP TRIGGER telemetry_label_values_clear ON telemetry_series;
DROP TRIGGER telemetry_label_values_prune ON telemetry_series;
DROP TRIGGER telemetry_label_values_add ON telemetry_series;
DROP FUNCTION telemetry_label_values_clear();
DROP FUNCTION telemetry_label_values_prune();
DROP FUNCTION telemetry_label_values_add();
DROP TABLE telemetry_label_values;
DROP INDEX telemetry_series_labels_idx;
