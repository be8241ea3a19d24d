-- migrate:up

-- Decoding a block in SQL (the telemetry view, telemetry_between, dashboards, down migrations) is
-- a few milliseconds of work that the planner prices far higher (each set-returning function
-- counts 1,000 rows), high enough for a server with JIT (jit = on with LLVM, as in Debian's and
-- most distributions' builds) to compile the query first: 230-270 ms a call, measured on Debian's
-- PostgreSQL 15, against 4-8 ms without. The function keeps its own setting, so it is planned
-- apart from the query that calls it, without JIT.
ALTER FUNCTION telemetry_decode(bytea) SET jit = off;

-- migrate:down
-- The migrations below this one decode every block in SQL on the way down, a statement per chunk:
-- they run in this transaction, without JIT, as this one's up made them.
SET LOCAL jit = off;
ALTER FUNCTION telemetry_decode(bytea) RESET jit;
