-- Agents: instructions, sources, a schedule and an output mode that make posts, and their runs.
-- `next_run_at` is the next due time of the schedule (null without one, or while disabled); the
-- scheduler moves it on in the same transaction that records the run and its job, conditional
-- on the value it read, so a due time makes one run however many nodes see it.
CREATE TABLE agents (
    id           TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id),
    livemode     BIGINT NOT NULL,
    name         TEXT NOT NULL,
    brand_id     TEXT,
    account_ids  TEXT NOT NULL,
    instructions TEXT NOT NULL,
    sources      TEXT NOT NULL,
    schedule     TEXT,
    output       TEXT NOT NULL,
    max_posts    BIGINT NOT NULL,
    max_credits  BIGINT NOT NULL,
    enabled      BIGINT NOT NULL,
    next_run_at  BIGINT,
    last_run_at  BIGINT,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
CREATE INDEX agents_by_workspace ON agents (workspace_id, id);
CREATE INDEX agents_due ON agents (next_run_at);

-- One row per run. A scheduled due time has one run (`agent_runs_once`); an agent has at most
-- one asked-for run waiting or running (`agent_runs_one_manual`). `attempts` counts the starts:
-- a run finishes only for the start that is still its latest, so a worker whose lease ran out
-- cannot record a second set of posts.
CREATE TABLE agent_runs (
    id            TEXT PRIMARY KEY,
    agent_id      TEXT NOT NULL,
    workspace_id  TEXT NOT NULL,
    livemode      BIGINT NOT NULL,
    trigger_kind  TEXT NOT NULL,
    scheduled_for BIGINT NOT NULL,
    status        TEXT NOT NULL,
    attempts      BIGINT NOT NULL DEFAULT 0,
    engine        TEXT,
    inputs        TEXT NOT NULL DEFAULT '[]',
    prompts       TEXT NOT NULL DEFAULT '[]',
    post_ids      TEXT NOT NULL DEFAULT '[]',
    notes         TEXT NOT NULL DEFAULT '[]',
    credits       BIGINT NOT NULL DEFAULT 0,
    error_code    TEXT,
    error_message TEXT,
    created_at    BIGINT NOT NULL,
    started_at    BIGINT,
    finished_at   BIGINT
);
CREATE INDEX agent_runs_by_agent ON agent_runs (agent_id, created_at);
CREATE UNIQUE INDEX agent_runs_once ON agent_runs (agent_id, scheduled_for)
    WHERE trigger_kind = 'schedule';
CREATE UNIQUE INDEX agent_runs_one_manual ON agent_runs (agent_id)
    WHERE trigger_kind = 'manual' AND status IN ('queued', 'running');
