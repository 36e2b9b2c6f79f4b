-- Web UI sessions (itinerary/web/sessions.py): a browser signs in with an API token; the
-- cookie holds a random id whose SHA-256 is stored here. A session is valid while it has
-- not expired and its token is not revoked (joined on token_hash at every request).
CREATE TABLE ui_sessions (
    id_hash VARCHAR(64) PRIMARY KEY,
    token_hash VARCHAR(128) NOT NULL,
    csrf_token VARCHAR(64) NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
CREATE INDEX idx_ui_sessions_expires_at ON ui_sessions (expires_at);
-- The run page lists a run's child runs (retries and kickOffJob runs name their parent).
-- Partial: most runs have no parent, and statistics over all those NULLs made SQLite scan.
CREATE INDEX idx_job_run_parent_run_id ON job_run (parent_run_id) WHERE parent_run_id IS NOT NULL;
