-- Named notification integrations (itinerary/webhooks/store.py): Slack, PagerDuty, New Relic
-- and custom webhooks, configured once and named by jobs' webhook actions. `config` is JSON
-- and holds the secrets (never returned by the API); `broken_reason` is set by a permanent
-- error from the service and cleared when the integration is edited or tested green.
CREATE TABLE integrations (
    id BIGINT AUTO_INCREMENT PRIMARY KEY,
    name VARCHAR(100) NOT NULL UNIQUE,
    type VARCHAR(16) NOT NULL,
    config TEXT NOT NULL,
    broken_reason TEXT,
    broken_at DATETIME(6),
    created_at DATETIME(6) NOT NULL,
    updated_at DATETIME(6) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- One row per delivery attempt: which integration, the delivery's id (the same on every
-- attempt: the receiver's idempotency key), the outcome and a truncated answer.
ALTER TABLE webhook_deliveries ADD COLUMN integration VARCHAR(100);
ALTER TABLE webhook_deliveries ADD COLUMN delivery_key VARCHAR(64);
ALTER TABLE webhook_deliveries ADD COLUMN outcome VARCHAR(16);
ALTER TABLE webhook_deliveries ADD COLUMN response TEXT;
CREATE INDEX idx_webhook_deliveries_integration ON webhook_deliveries (integration, created_at);
