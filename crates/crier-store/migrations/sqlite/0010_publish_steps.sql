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
