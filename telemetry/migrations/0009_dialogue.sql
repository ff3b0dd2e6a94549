-- The state each answer of the assistant left the conversation in (agent/dialogue.py): the
-- branch, window, devices and comparison a follow-up inherits, and the proposal or the
-- question about a device that the answer asked the person to answer. A thread is not stored:
-- a client sends the thread with every message, and the server recognises its own last
-- answer in it by `key`, the SHA-256 of that answer's text and of the message it answered,
-- looked up only among the rows of the same household and user. A client therefore cannot
-- bring another household's state, nor one the server never wrote.
CREATE TABLE dialogue_turns (
    turn_id      text PRIMARY KEY,
    household_id uuid NOT NULL REFERENCES households (id) ON DELETE CASCADE,
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    key          bytea NOT NULL CHECK (octet_length(key) = 32),
    state        jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX dialogue_turns_lookup ON dialogue_turns (household_id, user_id, key, created_at DESC);
CREATE INDEX dialogue_turns_age ON dialogue_turns (created_at);
