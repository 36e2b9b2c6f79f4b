-- Who changed a job and how (itinerary/audit.py): created, edited (with the changed
-- fields), paused, resumed, archived, and by whom (an API token's name, `apply`, or
-- how the server was open, e.g. `loopback`). Written by the syncer in the same
-- transaction as the change; the job page's events feed reads it by (job_id, at).
CREATE TABLE job_audit (
    id BIGINT PRIMARY KEY,
    job_id BIGINT NOT NULL,
    at TIMESTAMP NOT NULL,
    actor VARCHAR(200) NOT NULL,
    action VARCHAR(16) NOT NULL,
    changes TEXT NOT NULL,
    details TEXT NOT NULL
);
CREATE INDEX idx_job_audit_job_id_at ON job_audit (job_id, at);
