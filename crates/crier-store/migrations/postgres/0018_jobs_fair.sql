-- Publish claims share themselves between the workspaces with due jobs: finding those is one
-- seek per workspace on this index (a loose index scan), and each workspace's oldest due jobs
-- another.
CREATE INDEX jobs_fair ON jobs (kind, workspace_id, run_at);
