-- The seed's whole schema, plus what the product needs now: job fields for the
-- simple (non-podSpec) form, tags, run trigger/attempt/reason, attempts, API tokens,
-- and indexes for time-range queries on job_run. Times are UTC, stored without zone.

CREATE TABLE constraint_types (
    id INTEGER PRIMARY KEY,
    name VARCHAR(64) NOT NULL UNIQUE
);

CREATE TABLE action_types (
    id INTEGER PRIMARY KEY,
    name VARCHAR(64) NOT NULL UNIQUE
);

INSERT OR IGNORE INTO constraint_types (id, name) VALUES
    (1, 'maxConcurrentRuns'), (2, 'catchUp'), (3, 'preRunHook'), (4, 'postRunHook'),
    (5, 'catchUpWindow'), (6, 'maxExpectedRunTime'), (7, 'maxAllowedRunTime'),
    (8, 'requirePreviousSuccess')
;

INSERT OR IGNORE INTO action_types (id, name) VALUES
    (1, 'retry'), (2, 'kickOffJob'), (3, 'webhook'), (4, 'killAllInstances'),
    (5, 'killLatestInstance'), (6, 'skipNextInstance')
;

CREATE TABLE job (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name VARCHAR(63) NOT NULL,
    -- equals name while the job is live, NULL once archived: unique names among live jobs
    active_name VARCHAR(63) UNIQUE,
    description TEXT NOT NULL DEFAULT '',
    schedule VARCHAR(255),
    timezone VARCHAR(64) NOT NULL DEFAULT 'UTC',
    enabled BOOLEAN NOT NULL DEFAULT TRUE,
    paused_reason TEXT,
    namespace VARCHAR(63) NOT NULL DEFAULT 'default',
    images TEXT NOT NULL DEFAULT '[]',
    commands TEXT NOT NULL DEFAULT '[]',
    args TEXT NOT NULL DEFAULT '[]',
    service_accounts TEXT NOT NULL DEFAULT '[]',
    env TEXT NOT NULL DEFAULT '{}',
    env_secret TEXT,
    resources TEXT,
    pod_spec TEXT,
    constraints TEXT NOT NULL DEFAULT '{}',
    manually_runnable BOOLEAN NOT NULL DEFAULT TRUE,
    manual_run_modifiable_fields TEXT NOT NULL DEFAULT '[]',
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    archived_at TIMESTAMP
);
CREATE INDEX idx_job_name ON job (name);
CREATE INDEX idx_job_schedule ON job (schedule);

CREATE TABLE job_tags (
    job_id BIGINT NOT NULL REFERENCES job (id),
    tag VARCHAR(100) NOT NULL,
    PRIMARY KEY (job_id, tag)
);
CREATE INDEX idx_job_tags_tag ON job_tags (tag);

CREATE TABLE job_actions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id BIGINT NOT NULL REFERENCES job (id),
    position INTEGER NOT NULL DEFAULT 0,
    action_type_id INTEGER NOT NULL REFERENCES action_types (id),
    trigger VARCHAR(32) NOT NULL,
    constraint_type_id INTEGER REFERENCES constraint_types (id),
    config TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX idx_job_actions_job_id ON job_actions (job_id);
CREATE INDEX idx_job_actions_action_type_id ON job_actions (action_type_id);
CREATE INDEX idx_job_actions_constraint_type_id ON job_actions (constraint_type_id);

CREATE TABLE job_run (
    job_id BIGINT NOT NULL REFERENCES job (id),
    scheduled_at TIMESTAMP NOT NULL,
    run_id VARCHAR(32) NOT NULL,
    trigger VARCHAR(16) NOT NULL DEFAULT 'schedule',
    attempt INTEGER NOT NULL DEFAULT 1,
    status VARCHAR(16) NOT NULL,
    success BOOLEAN,
    reason TEXT,
    error TEXT,
    exit_code INTEGER,
    started_at TIMESTAMP,
    completed_at TIMESTAMP,
    behind_schedule BOOLEAN NOT NULL DEFAULT FALSE,
    args TEXT,
    executor VARCHAR(16),
    handle TEXT,
    parent_run_id VARCHAR(32),
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    PRIMARY KEY (job_id, scheduled_at)
);
CREATE UNIQUE INDEX idx_job_runs_run_id ON job_run (run_id);
CREATE INDEX idx_job_runs_job_id ON job_run (job_id);
CREATE INDEX idx_job_run_scheduled_at ON job_run (scheduled_at);
CREATE INDEX idx_job_run_started_at ON job_run (started_at);
CREATE INDEX idx_job_run_completed_at ON job_run (completed_at);
CREATE INDEX idx_job_run_status_scheduled_at ON job_run (status, scheduled_at);
CREATE INDEX idx_job_run_job_id_started_at ON job_run (job_id, started_at);

CREATE TABLE run_attempts (
    run_id VARCHAR(32) NOT NULL,
    attempt INTEGER NOT NULL,
    status VARCHAR(16) NOT NULL,
    started_at TIMESTAMP,
    completed_at TIMESTAMP,
    exit_code INTEGER,
    error TEXT,
    executor VARCHAR(16),
    handle TEXT,
    PRIMARY KEY (run_id, attempt)
);

CREATE TABLE constraint_violations (
    id BIGINT PRIMARY KEY,
    run_id VARCHAR(32) NOT NULL,
    constraint_type_id INTEGER NOT NULL REFERENCES constraint_types (id),
    violation_time TIMESTAMP NOT NULL,
    details TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX idx_constraint_violations_run_id ON constraint_violations (run_id);
CREATE INDEX idx_constraint_violations_constraint_type_id ON constraint_violations (constraint_type_id);

CREATE TABLE action_runs (
    id BIGINT PRIMARY KEY,
    run_id VARCHAR(32) NOT NULL,
    action_type_id INTEGER NOT NULL REFERENCES action_types (id),
    trigger VARCHAR(32) NOT NULL,
    constraint_violation_id BIGINT REFERENCES constraint_violations (id),
    executed_at TIMESTAMP NOT NULL,
    success BOOLEAN NOT NULL,
    error TEXT,
    details TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX idx_action_runs_run_id ON action_runs (run_id);
CREATE INDEX idx_action_runs_action_type_id ON action_runs (action_type_id);
CREATE INDEX idx_action_runs_constraint_violation_id ON action_runs (constraint_violation_id);

-- Statistics. stats_period_id is the period's start in epoch seconds; times are milliseconds.
CREATE TABLE scheduler_stats (
    stats_period_id BIGINT PRIMARY KEY,
    start_time TIMESTAMP NOT NULL,
    end_time TIMESTAMP NOT NULL,
    iterations INTEGER NOT NULL DEFAULT 0,
    run_jobs INTEGER NOT NULL DEFAULT 0,
    late_jobs INTEGER NOT NULL DEFAULT 0,
    time_passed_run_time REAL NOT NULL DEFAULT 0,
    missed_jobs INTEGER NOT NULL DEFAULT 0,
    time_passed_grace_period REAL NOT NULL DEFAULT 0,
    jobs_cancelled INTEGER NOT NULL DEFAULT 0,
    min_inbox_length INTEGER NOT NULL DEFAULT 0,
    max_inbox_length INTEGER NOT NULL DEFAULT 0,
    avg_inbox_length REAL NOT NULL DEFAULT 0,
    empty_inbox_time REAL NOT NULL DEFAULT 0,
    avg_time_in_inbox REAL NOT NULL DEFAULT 0,
    min_time_in_inbox REAL NOT NULL DEFAULT 0,
    max_time_in_inbox REAL NOT NULL DEFAULT 0
);

CREATE TABLE orchestrator_stats (
    run_id VARCHAR(32) NOT NULL,
    stats_period_id BIGINT NOT NULL,
    runtime REAL,
    constraints_checked INTEGER NOT NULL DEFAULT 0,
    actions_taken INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, stats_period_id)
);
CREATE INDEX idx_orchestrator_stats_stats_period_id ON orchestrator_stats (stats_period_id);

CREATE TABLE syncer_stats (
    stats_period_id BIGINT PRIMARY KEY,
    start_time TIMESTAMP NOT NULL,
    end_time TIMESTAMP NOT NULL,
    total_writes INTEGER NOT NULL DEFAULT 0,
    writes_succeeded INTEGER NOT NULL DEFAULT 0,
    writes_failed INTEGER NOT NULL DEFAULT 0,
    avg_writes_in_flight REAL NOT NULL DEFAULT 0,
    max_writes_in_flight INTEGER NOT NULL DEFAULT 0,
    min_writes_in_flight INTEGER NOT NULL DEFAULT 0,
    avg_queued_writes REAL NOT NULL DEFAULT 0,
    max_queued_writes INTEGER NOT NULL DEFAULT 0,
    min_queued_writes INTEGER NOT NULL DEFAULT 0,
    avg_inbox_length REAL NOT NULL DEFAULT 0,
    max_inbox_length INTEGER NOT NULL DEFAULT 0,
    min_inbox_length INTEGER NOT NULL DEFAULT 0,
    avg_time_in_write_queue REAL NOT NULL DEFAULT 0,
    max_time_in_write_queue REAL NOT NULL DEFAULT 0,
    min_time_in_write_queue REAL NOT NULL DEFAULT 0,
    avg_time_in_inbox REAL NOT NULL DEFAULT 0,
    max_time_in_inbox REAL NOT NULL DEFAULT 0,
    min_time_in_inbox REAL NOT NULL DEFAULT 0
);

CREATE TABLE webhook_deliveries (
    id BIGINT PRIMARY KEY,
    run_id VARCHAR(32),
    webhook_type VARCHAR(32) NOT NULL,
    trigger VARCHAR(32) NOT NULL,
    url TEXT NOT NULL,
    attempt_count INTEGER NOT NULL DEFAULT 0,
    status_code INTEGER,
    success BOOLEAN NOT NULL DEFAULT FALSE,
    error TEXT,
    request_duration REAL,
    created_at TIMESTAMP NOT NULL,
    delivered_at TIMESTAMP
);
CREATE INDEX idx_webhook_deliveries_run_id ON webhook_deliveries (run_id);
CREATE INDEX idx_webhook_deliveries_created_at ON webhook_deliveries (created_at);

CREATE TABLE webhook_handler_stats (
    stats_period_id BIGINT PRIMARY KEY,
    start_time TIMESTAMP NOT NULL,
    end_time TIMESTAMP NOT NULL,
    webhooks_sent INTEGER NOT NULL DEFAULT 0,
    webhooks_succeeded INTEGER NOT NULL DEFAULT 0,
    webhooks_failed INTEGER NOT NULL DEFAULT 0,
    total_retries INTEGER NOT NULL DEFAULT 0,
    avg_delivery_time REAL NOT NULL DEFAULT 0,
    max_delivery_time REAL NOT NULL DEFAULT 0,
    min_delivery_time REAL NOT NULL DEFAULT 0,
    avg_inbox_length REAL NOT NULL DEFAULT 0,
    max_inbox_length INTEGER NOT NULL DEFAULT 0,
    min_inbox_length INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE api_tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name VARCHAR(100) NOT NULL UNIQUE,
    role VARCHAR(16) NOT NULL,
    token_hash VARCHAR(128) NOT NULL UNIQUE,
    created_at TIMESTAMP NOT NULL,
    last_used_at TIMESTAMP,
    revoked_at TIMESTAMP
);
