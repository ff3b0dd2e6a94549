-- Foundation: households, people and their access, devices, readings, the hot table of
-- latest readings, the action log and the audit log.
-- readings becomes a TimescaleDB hypertable when the extension is loaded on the server;
-- the same SQL runs on plain PostgreSQL.

CREATE TABLE households (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name        text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
    -- An IANA name, validated by the application against zoneinfo before it gets here.
    timezone    text NOT NULL CHECK (length(timezone) BETWEEN 1 AND 64),
    currency    char(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    tariff      jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email       text NOT NULL CHECK (length(email) BETWEEN 3 AND 320),
    role        text NOT NULL CHECK (role IN ('resident', 'support', 'gateway', 'admin')),
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_key ON users (lower(email));

-- Residents are owners or members; a gateway is bound to the households it reports for.
CREATE TABLE household_members (
    household_id uuid NOT NULL REFERENCES households (id) ON DELETE CASCADE,
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role         text NOT NULL CHECK (role IN ('owner', 'member', 'gateway')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (household_id, user_id)
);
CREATE INDEX household_members_user_idx ON household_members (user_id);

CREATE TABLE support_assignments (
    household_id uuid NOT NULL REFERENCES households (id) ON DELETE CASCADE,
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    expires_at   timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (household_id, user_id)
);
CREATE INDEX support_assignments_user_idx ON support_assignments (user_id);

CREATE TABLE devices (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    household_id uuid NOT NULL REFERENCES households (id) ON DELETE CASCADE,
    name         text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 100),
    kind         text NOT NULL
                 CHECK (kind IN ('consumer', 'solar', 'grid', 'battery', 'ev_charger')),
    controllable boolean NOT NULL DEFAULT false,
    max_watts    double precision NOT NULL
                 CHECK (max_watts > 0 AND max_watts < 'Infinity'::float8),
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX devices_household_name_key ON devices (household_id, lower(name));

-- Raw telemetry is append-only audit data: one row per (device, instant).
-- PostgreSQL orders NaN above every number and equal to itself, so a range check against
-- the two infinities is what keeps NaN, +Infinity and -Infinity out.
CREATE TABLE readings (
    device_id   uuid NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    ts          timestamptz NOT NULL,
    watts       double precision NOT NULL
                CONSTRAINT readings_watts_finite
                CHECK (watts > '-Infinity'::float8 AND watts < 'Infinity'::float8),
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (device_id, ts)
);

DO $$
BEGIN
    IF current_setting('shared_preload_libraries') LIKE '%timescaledb%' THEN
        CREATE EXTENSION IF NOT EXISTS timescaledb;
        PERFORM create_hypertable('readings', by_range('ts', INTERVAL '1 day'));
    END IF;
END
$$;

-- The hot table: each device's newest reading, never moved backwards by a late one.
CREATE TABLE device_latest (
    device_id   uuid PRIMARY KEY REFERENCES devices (id) ON DELETE CASCADE,
    ts          timestamptz NOT NULL,
    watts       double precision NOT NULL
                CHECK (watts > '-Infinity'::float8 AND watts < 'Infinity'::float8),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE actions (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    household_id    uuid NOT NULL REFERENCES households (id) ON DELETE CASCADE,
    device_id       uuid NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    requested_by    uuid NOT NULL REFERENCES users (id),
    op              text NOT NULL,
    value           text NOT NULL,
    status          text NOT NULL CHECK (status IN (
                        'proposed', 'confirmed', 'cancelled', 'expired',
                        'sent', 'acknowledged', 'failed')),
    command         jsonb,
    idempotency_key text,
    expires_at      timestamptz NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX actions_household_idx ON actions (household_id, created_at DESC);
CREATE UNIQUE INDEX actions_idempotency_key ON actions (requested_by, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

CREATE TABLE audit_log (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at           timestamptz NOT NULL DEFAULT now(),
    user_id      uuid REFERENCES users (id),
    household_id uuid REFERENCES households (id) ON DELETE SET NULL,
    action       text NOT NULL,
    detail       jsonb NOT NULL DEFAULT '{}'::jsonb,
    request_id   text
);
CREATE INDEX audit_log_household_idx ON audit_log (household_id, at DESC);
CREATE INDEX audit_log_user_idx ON audit_log (user_id, at DESC);
