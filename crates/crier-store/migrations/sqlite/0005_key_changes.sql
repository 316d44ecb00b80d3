-- Which key each bump of the `key_changes` counter was for: the row's `seq` is the counter's
-- value after the bump, in the same transaction. A process that polls the counter (SQLite has
-- no LISTEN) reads the digests changed since the value it last saw and drops just those keys
-- from its cache. Only the latest changes are kept (see crier-store/src/notify.rs); a reader
-- that fell further behind drops its whole cache.
CREATE TABLE key_changes (
    seq    BIGINT PRIMARY KEY,
    digest TEXT NOT NULL
);
