-- Per-job, per-hour roll-up of finished runs (itinerary/rollup.py), so a job's 30-day
-- figures read ~720 rows rather than 43,200. An hour is stored once every run in it has
-- ended (an ended run never changes); `stamp` is the hour's run count then, and a read
-- that counts otherwise in job_run recomputes the hour (a catch-up run added late).
-- `figures` is JSON: counts by state, retries, failure reasons, and the durations and
-- start latenesses themselves as packed doubles (the percentiles need every value).
-- hour_start is the hour's start in epoch seconds (UTC). Written through the syncer.
CREATE TABLE job_run_hours (
    job_id BIGINT NOT NULL,
    hour_start BIGINT NOT NULL,
    stamp VARCHAR(64) NOT NULL,
    figures MEDIUMTEXT NOT NULL,
    PRIMARY KEY (job_id, hour_start)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
