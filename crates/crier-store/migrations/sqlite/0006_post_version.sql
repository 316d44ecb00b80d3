-- Every change of a post bumps its version; a change decided on a read commits only if the
-- post is still at the version read (an approval cannot land on content or a time it did not see).
ALTER TABLE posts ADD COLUMN version BIGINT NOT NULL DEFAULT 0;
