-- migrate:up

-- A span keeps its links (OTLP Span.links: the spans of other traces it follows from, such as the
-- publishes of the queue messages a batch stored), so that a trace read back shows them, and a
-- trace can list the spans elsewhere that link to it (a publish's trace: the batch that stored its
-- messages). The GIN index serves that containment lookup; a span without links adds no entry.
ALTER TABLE gateway_spans ADD COLUMN links jsonb NOT NULL DEFAULT '[]';
CREATE INDEX gateway_spans_links_idx ON gateway_spans USING gin (links jsonb_path_ops);

-- migrate:down
DROP INDEX gateway_spans_links_idx;
ALTER TABLE gateway_spans DROP COLUMN links;
