-- A manual or kicked-off run's overrides of the job's resources and env (JSON text, NULL
-- when none), written with the run's claim: the run page and GET /api/v1/runs/{id} show
-- them, and a restarted process that recovers the run applies them to later attempts.
-- (Args overrides were stored from the start, in job_run.args.)
ALTER TABLE job_run ADD COLUMN overrides TEXT;
