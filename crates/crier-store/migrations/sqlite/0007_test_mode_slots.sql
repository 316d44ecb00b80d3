-- Queue slots belong to one mode, like posts and accounts: a test-mode key reads and replaces
-- its own slots and never the live ones. The slots stored so far were set by live and test keys
-- alike on one shared list; they are kept as live, which is what live posts were scheduled by.
-- SQLite cannot change a primary key in place, so the table is rebuilt.
CREATE TABLE queue_slots_by_mode (
    workspace_id  TEXT NOT NULL,
    livemode      BIGINT NOT NULL,
    weekday       BIGINT NOT NULL,
    minute_of_day BIGINT NOT NULL,
    PRIMARY KEY (workspace_id, livemode, weekday, minute_of_day)
);
INSERT INTO queue_slots_by_mode (workspace_id, livemode, weekday, minute_of_day)
    SELECT workspace_id, 1, weekday, minute_of_day FROM queue_slots;
DROP TABLE queue_slots;
ALTER TABLE queue_slots_by_mode RENAME TO queue_slots;
