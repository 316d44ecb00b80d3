-- Queue slots belong to one mode, like posts and accounts: a test-mode key reads and replaces
-- its own slots and never the live ones. The slots stored so far were set by live and test keys
-- alike on one shared list; they are kept as live, which is what live posts were scheduled by.
ALTER TABLE queue_slots ADD COLUMN livemode BIGINT NOT NULL DEFAULT 1;
ALTER TABLE queue_slots ALTER COLUMN livemode DROP DEFAULT;
ALTER TABLE queue_slots DROP CONSTRAINT queue_slots_pkey;
ALTER TABLE queue_slots ADD PRIMARY KEY (workspace_id, livemode, weekday, minute_of_day);
