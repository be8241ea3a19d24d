-- migrate:up

-- Series of any metric with any labels (Prometheus remote write), not only dcgm-exporter GPUs.
-- A series keeps its whole label set as sent (`prom_labels`, __name__ apart in metric_name); the
-- GPU columns are filled only when the labels name a GPU (UUID), so gpu_id may now be null.
ALTER TABLE telemetry_series ALTER COLUMN gpu_id DROP NOT NULL;
ALTER TABLE telemetry_series ADD COLUMN prom_labels jsonb;

-- The identity of a series sent as a label set: its metric and exactly its labels. Written as
-- the GPU key with no GPU columns, so it can never equal the key of a scraped GPU series (which
-- always has a gpu_id); jsonb's text form is canonical, so label order does not matter.
CREATE FUNCTION telemetry_series_key(p_metric_name text, p_labels jsonb)
RETURNS uuid LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT telemetry_series_key(p_metric_name, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, p_labels)
$$;

-- The label set of a series stored from GPU columns (a scrape made by the collector), in
-- dcgm-exporter's current spellings; empty values are no label. libs/model labelsOfGpuColumns()
-- computes the same for the series the streamer stores from now on.
CREATE FUNCTION telemetry_gpu_labels(
  p_gpu_id text, p_gpu_index integer, p_device text, p_model_name text, p_hostname text,
  p_container text, p_pod text, p_namespace text, p_labels jsonb
) RETURNS jsonb LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT coalesce((SELECT jsonb_object_agg(key, value) FROM jsonb_each_text(p_labels) WHERE value <> ''), '{}')
      || jsonb_strip_nulls(jsonb_build_object(
           'UUID', nullif(p_gpu_id, ''), 'gpu', p_gpu_index::text, 'device', nullif(p_device, ''),
           'modelName', nullif(p_model_name, ''), 'Hostname', nullif(p_hostname, ''),
           'container', nullif(p_container, ''), 'pod', nullif(p_pod, ''),
           'namespace', nullif(p_namespace, '')))
$$;

UPDATE telemetry_series
SET prom_labels = telemetry_gpu_labels(gpu_id, gpu_index, device, model_name, hostname, container, pod,
                                       namespace, labels);
ALTER TABLE telemetry_series ALTER COLUMN prom_labels SET NOT NULL;

-- A series written without its label set (by SQL that knows only the GPU columns: scripts,
-- benchmarks) gets the one its GPU columns make, as the backfill above did.
CREATE FUNCTION telemetry_series_fill_labels() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.prom_labels IS NULL THEN
    NEW.prom_labels := telemetry_gpu_labels(NEW.gpu_id, NEW.gpu_index, NEW.device, NEW.model_name, NEW.hostname,
                                            NEW.container, NEW.pod, NEW.namespace, NEW.labels);
  END IF;
  RETURN NEW;
END
$$;
CREATE TRIGGER telemetry_series_fill_labels BEFORE INSERT ON telemetry_series
  FOR EACH ROW EXECUTE FUNCTION telemetry_series_fill_labels();

-- Prometheus' stale markers (the NaN 0x7ff0000000000002): where a series ends for PromQL's
-- lookback. Kept here, not as a value in the hot rows: Postgres prints every NaN as 'NaN' (the text
-- COPY the hot rows go in by loses its bits), and a marker is no value for any average or rollup.
-- A marker is rare (a series or target went away), so a plain table with DELETE retention will do.
CREATE TABLE telemetry_stale (
  series_id bigint NOT NULL,
  ts        timestamptz NOT NULL,
  PRIMARY KEY (series_id, ts)
);

-- migrate:down

DROP TABLE telemetry_stale;
-- Series without a GPU have no place in the schema below: they go, with their samples and blocks.
DELETE FROM telemetry_samples WHERE series_id IN (SELECT id FROM telemetry_series WHERE gpu_id IS NULL);
DELETE FROM telemetry_blocks WHERE series_id IN (SELECT id FROM telemetry_series WHERE gpu_id IS NULL);
DELETE FROM telemetry_rollups_1m WHERE series_id IN (SELECT id FROM telemetry_series WHERE gpu_id IS NULL);
DELETE FROM telemetry_rollups_1h WHERE series_id IN (SELECT id FROM telemetry_series WHERE gpu_id IS NULL);
DELETE FROM telemetry_series WHERE gpu_id IS NULL;
DROP TRIGGER telemetry_series_fill_labels ON telemetry_series;
DROP FUNCTION telemetry_series_fill_labels();
ALTER TABLE telemetry_series DROP COLUMN prom_labels;
ALTER TABLE telemetry_series ALTER COLUMN gpu_id SET NOT NULL;
DROP FUNCTION telemetry_gpu_labels(text, integer, text, text, text, text, text, text, jsonb);
DROP FUNCTION telemetry_series_key(text, jsonb);
