-- GET /runs?job_id=J&status=S (and /jobs/J/runs?status=S), newest slot first: with only
-- the primary key (job_id, scheduled_at) the database walks every run of the job and
-- drops those in other states (on PostgreSQL with 1,000,000 runs: ~700 rows read for a
-- 100-row page, 9 ms). This index reads exactly the page, in order (0.1 ms).
CREATE INDEX idx_job_run_job_id_status_scheduled_at ON job_run (job_id, status, scheduled_at);
