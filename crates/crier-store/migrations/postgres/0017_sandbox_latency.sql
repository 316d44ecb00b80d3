-- A sandbox account's simulated network latency: every call of the account waits this long
-- (set through POST /v1/accounts/{id}/faults), to measure publishing under real-world latency.
ALTER TABLE sandbox_faults ADD COLUMN latency_ms BIGINT NOT NULL DEFAULT 0;
