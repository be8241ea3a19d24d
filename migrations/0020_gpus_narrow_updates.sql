-- migrate:up

-- Every batch the streamer stores moves last_seen of the GPUs it holds, so a gpus row is rewritten
-- every scrape. Its list of metric names (~1 kB for dcgm-exporter's forty) made each rewrite a
-- 1 kB tuple, too wide for the page it was on: most updates were not HOT, and each wrote a new
-- index entry and 1 kB of WAL. With a 128-byte tuple target the list moves to TOAST, where an
-- update that leaves it alone keeps pointing at it, and half of each page stays free for the new
-- versions of its rows.
ALTER TABLE gpus SET (toast_tuple_target = 128, fillfactor = 50);

-- migrate:down
ALTER TABLE gpus RESET (toast_tuple_target, fillfactor);
