-- migrate:up

-- Spans received on the gateway's OTLP/HTTP endpoint, so one request can be followed across the
-- four services with GET /api/v1/traces/{traceId}.
CREATE TABLE gateway_spans (
  trace_id       text NOT NULL,
  span_id        text NOT NULL,
  parent_span_id text,
  service        text NOT NULL,
  name           text NOT NULL,
  kind           integer NOT NULL,
  start_time     timestamptz NOT NULL,
  end_time       timestamptz NOT NULL,
  duration_ms    double precision NOT NULL,
  status_code    integer NOT NULL DEFAULT 0,
  status_message text,
  attributes     jsonb NOT NULL DEFAULT '{}',
  PRIMARY KEY (trace_id, span_id)
);
CREATE INDEX gateway_spans_start_time_idx ON gateway_spans (start_time);

-- migrate:down
DROP TABLE IF EXISTS gateway_spans;
