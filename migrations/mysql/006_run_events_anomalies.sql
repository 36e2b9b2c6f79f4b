-- A run's life (itinerary/history.py): every state change of a run and of each of its
-- attempts, with its time and reason, written by the syncer in the same transaction as
-- the change itself. `scope` is 'run' or 'attempt'.
CREATE TABLE run_events (
    id BIGINT AUTO_INCREMENT PRIMARY KEY,
    run_id VARCHAR(32) NOT NULL,
    attempt INTEGER,
    scope VARCHAR(8) NOT NULL,
    from_status VARCHAR(16),
    status VARCHAR(16) NOT NULL,
    at DATETIME(6) NOT NULL,
    reason TEXT
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE INDEX idx_run_events_run_id_at ON run_events (run_id, at);

-- Unusual runs (itinerary/anomaly/): a run, or a slot with no run (kind 'silence').
-- The id is chosen by the detector (a silent slot's id is derived from it: idempotent).
CREATE TABLE anomalies (
    id BIGINT PRIMARY KEY,
    job_id BIGINT NOT NULL,
    run_id VARCHAR(32),
    slot_at DATETIME(6),
    kind VARCHAR(16) NOT NULL,
    detected_at DATETIME(6) NOT NULL,
    score DOUBLE NOT NULL,
    baseline TEXT NOT NULL,
    explanation TEXT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE INDEX idx_anomalies_job_id_detected_at ON anomalies (job_id, detected_at);
CREATE INDEX idx_anomalies_run_id ON anomalies (run_id);
