-- Every settled model call: what it used and cost. Redis holds the live counters; this is
-- the record they are rebuilt from when Redis has lost them. Money in integer micro-units.
CREATE TABLE usage_ledger (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    reservation_id text NOT NULL UNIQUE,
    turn_id text,
    user_id uuid NOT NULL,
    household_id uuid,
    model text NOT NULL,
    prompt_tokens integer NOT NULL CHECK (prompt_tokens >= 0),
    completion_tokens integer NOT NULL CHECK (completion_tokens >= 0),
    cost_micro bigint NOT NULL CHECK (cost_micro >= 0),
    estimated boolean NOT NULL DEFAULT false,
    -- The UTC day and month the reservation was charged to, by the quota store's clock.
    day date NOT NULL,
    month date NOT NULL CHECK (extract(day FROM month) = 1),
    at timestamptz NOT NULL DEFAULT now()
);
-- No foreign key to users: a deleted user's spend still counts against the month's cap.
CREATE INDEX usage_ledger_user_day ON usage_ledger (user_id, day);
CREATE INDEX usage_ledger_user_month ON usage_ledger (user_id, month);
CREATE INDEX usage_ledger_month ON usage_ledger (month);
