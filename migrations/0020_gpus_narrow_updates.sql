-- migrate:up

-- Every batch the streamer stores moves last_seen of the GPUs it holds, so a gpus row (~1.3 kB with
-- dcgm-exporter's forty metric names) is rewritten every scrape. With pages filled to 100%, most
-- of those updates found no room on their row's page: they were not HOT, each wrote a new index
-- entry, and the table grew to 48 MB for 512 GPUs within minutes. Half of each page now stays free
-- for the new versions of its rows, so an update stays on its page and the old version is pruned
-- there.
ALTER TABLE gpus SET (fillfactor = 50);

-- migrate:down
ALTER TABLE gpus RESET (fillfactor);
