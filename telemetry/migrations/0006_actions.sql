-- Consent-gated device commands: proposals (actions), their event log, the outbox of
-- commands a household's gateway reads and acknowledges, and idempotency records.
--
-- The 0001 actions table is replaced rather than altered: no code ever wrote to it, and its
-- uuid ids become unguessable text tokens. The guard keeps this from ever dropping a row.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM actions) THEN
        RAISE EXCEPTION 'actions has rows: migrate them before replacing the table';
    END IF;
END
$$;
DROP TABLE actions;

-- Commands are json, not jsonb: jsonb reorders keys, and a command's keys are op,
-- device_name, value in that order. The check keeps the command equal to its columns.
CREATE TABLE actions (
    id           text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9_-]{16,64}$'),
    household_id uuid NOT NULL REFERENCES households (id) ON DELETE CASCADE,
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    device_id    uuid NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    device_name  text NOT NULL,
    op           text NOT NULL
                 CHECK (op IN ('SET_POWER', 'SET_CHARGE_CURRENT', 'SET_BATTERY_RESERVE')),
    value        text NOT NULL,
    command      json NOT NULL,
    status       text NOT NULL DEFAULT 'proposed' CHECK (status IN (
                     'proposed', 'confirmed', 'sent', 'acknowledged', 'failed',
                     'cancelled', 'expired')),
    undo_of      text REFERENCES actions (id) ON DELETE SET NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CHECK (expires_at > created_at),
    CHECK (command::jsonb
           = jsonb_build_object('op', op, 'device_name', device_name, 'value', value))
);
CREATE INDEX actions_pending_idx ON actions (household_id, user_id, created_at)
    WHERE status = 'proposed';
CREATE INDEX actions_undo_of_idx ON actions (undo_of) WHERE undo_of IS NOT NULL;

-- Every transition, in order (id), with who caused it (none for expiry) and the gateway's
-- detail for acknowledgements.
CREATE TABLE action_events (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    action_id text NOT NULL REFERENCES actions (id) ON DELETE CASCADE,
    status    text NOT NULL CHECK (status IN (
                  'proposed', 'confirmed', 'sent', 'acknowledged', 'failed',
                  'cancelled', 'expired')),
    user_id   uuid REFERENCES users (id) ON DELETE SET NULL,
    detail    text CHECK (length(detail) <= 500),
    at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX action_events_action_idx ON action_events (action_id, id);

-- The outbox. One command per action at most, whatever races: action_id is unique.
CREATE TABLE commands (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    action_id       text NOT NULL UNIQUE REFERENCES actions (id) ON DELETE CASCADE,
    household_id    uuid NOT NULL REFERENCES households (id) ON DELETE CASCADE,
    command         json NOT NULL,
    status          text NOT NULL DEFAULT 'sent'
                    CHECK (status IN ('sent', 'acknowledged', 'failed')),
    detail          text CHECK (length(detail) <= 500),
    created_at      timestamptz NOT NULL DEFAULT now(),
    acknowledged_at timestamptz,
    acknowledged_by uuid REFERENCES users (id) ON DELETE SET NULL,
    CHECK ((status = 'sent') = (acknowledged_at IS NULL))
);
CREATE INDEX commands_household_idx ON commands (household_id, status, created_at);

-- (user, Idempotency-Key) -> the request it was first used for and the response it got.
-- Claimed (response still null) and completed inside the transaction that does the work,
-- so a committed record always has its response, and the work always has its record.
CREATE TABLE idempotency_keys (
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    key          text NOT NULL CHECK (key ~ '^[!-~]{1,128}$'),
    endpoint     text NOT NULL,
    action_id    text NOT NULL,
    request_hash text NOT NULL,
    status_code  smallint,
    response     json,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, key),
    CHECK ((status_code IS NULL) = (response IS NULL))
);
