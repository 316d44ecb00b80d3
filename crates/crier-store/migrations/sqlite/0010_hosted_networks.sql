-- What a network connector kept between the steps of publishing one part (upload ids,
-- container ids, when the last call went out), so a retry after a crash or a lost answer
-- resumes and reconciles instead of starting again. Written before the next step is taken;
-- at most 64 per part (the store refuses more).
CREATE TABLE publish_steps (
    post_id    TEXT NOT NULL,
    account_id TEXT NOT NULL,
    part       BIGINT NOT NULL,
    name       TEXT NOT NULL,
    value      TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (post_id, account_id, part, name)
);

-- Each account's follower count as its network reports it, one row per account and UTC day
-- (the latest reading of the day), for account analytics. NULL: asked, and the network did not
-- say (it reports none, or the call failed); the row still marks the account as visited.
CREATE TABLE account_followers (
    account_id   TEXT NOT NULL,
    workspace_id TEXT NOT NULL,
    day          TEXT NOT NULL,
    followers    BIGINT,
    collected_at BIGINT NOT NULL,
    PRIMARY KEY (account_id, day)
);
CREATE INDEX account_followers_by_workspace ON account_followers (workspace_id, account_id, day);
