-- Items and the stock reservations held against them.
CREATE TABLE items (
    id          uuid PRIMARY KEY,
    name        text NOT NULL,
    description text NOT NULL,
    price_minor bigint NOT NULL CHECK (price_minor >= 0),
    currency    text NOT NULL,
    stock       bigint NOT NULL CHECK (stock >= 0),
    version     bigint NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);

-- No foreign key to items: a reservation outlives a deleted item, and a
-- released-before-reserved key has no item at all.
CREATE TABLE reservations (
    key         text PRIMARY KEY,
    item_id     uuid,
    quantity    bigint NOT NULL CHECK (quantity >= 0),
    status      text NOT NULL CHECK (status IN ('held', 'confirmed', 'released', 'expired')),
    expires_at  timestamptz,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);

CREATE INDEX reservations_held_by_expiry ON reservations (expires_at) WHERE status = 'held';
