-- Orders, with their lines as the prices seen when they were placed.
CREATE TABLE orders (
    id              uuid PRIMARY KEY,
    idempotency_key text UNIQUE,
    fingerprint     text NOT NULL,
    status          text NOT NULL CHECK (status IN ('pending', 'placed', 'compensating', 'failed', 'cancelling', 'cancelled')),
    lines           jsonb NOT NULL,
    currency        text,
    total_minor     bigint,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL
);

-- What the reconciler scans for.
CREATE INDEX orders_unfinished ON orders (updated_at) WHERE status IN ('pending', 'compensating', 'cancelling');
