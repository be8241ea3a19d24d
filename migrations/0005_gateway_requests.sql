-- migrate:up

-- One row per proxied request, written by the gateway in batches off the response path.
CREATE TABLE gateway_requests (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  at          timestamptz NOT NULL,
  route       text NOT NULL,
  method      text NOT NULL,
  path        text NOT NULL,
  status      integer NOT NULL,
  latency_ms  double precision NOT NULL,
  bytes_in    bigint NOT NULL,
  bytes_out   bigint NOT NULL,
  key_id      text,
  request_id  text NOT NULL,
  trace_id    text,
  upstream    text
);
-- Analytics read a route over a time range; listings read the newest first.
CREATE INDEX gateway_requests_route_at_idx ON gateway_requests (route, at);
CREATE INDEX gateway_requests_at_idx ON gateway_requests (at);

-- migrate:down
DROP TABLE IF EXISTS gateway_requests;
