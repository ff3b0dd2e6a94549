-- Token revocation, the system of record every process checks on every request: single
-- tokens by their jti (or, for a token without one, its digest), and all of a user's
-- tokens issued before an instant.

-- A revoked token's row is only needed until the token expires on its own; expires_at lets
-- those rows be purged.
CREATE TABLE revoked_tokens (
    jti        text PRIMARY KEY CHECK (length(jti) BETWEEN 1 AND 200),
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX revoked_tokens_expires_idx ON revoked_tokens (expires_at);

-- Tokens of the user issued (iat) before this instant are refused; NULL: none is.
ALTER TABLE users ADD COLUMN tokens_valid_after timestamptz;
