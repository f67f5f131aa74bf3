-- The web console: sign-in names and password hashes (argon2id, PHC strings),
-- one-time invitation links, browser sessions, and a manager's verdict on an
-- alert. Secrets (session cookies, invitation tokens) are stored as their
-- SHA-256 only; they carry 256 random bits, so a fast hash is enough.

CREATE TABLE console_logins (
    user_id          TEXT PRIMARY KEY REFERENCES users(id),
    org_id           TEXT NOT NULL REFERENCES orgs(id),
    -- What a person types to sign in; unique across organisations.
    username         TEXT NOT NULL UNIQUE,
    -- NULL until a password is set (by an admin or through an invitation).
    password_hash    TEXT,
    password_set_at  BIGINT,
    failed_attempts  BIGINT NOT NULL DEFAULT 0,
    locked_until     BIGINT,
    disabled_at      BIGINT,
    created_at       BIGINT NOT NULL
);

CREATE TABLE console_invites (
    token_hash   TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users(id),
    org_id       TEXT NOT NULL REFERENCES orgs(id),
    created_by   TEXT,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    used_at      BIGINT
);
CREATE INDEX console_invites_user ON console_invites (user_id);

CREATE TABLE console_sessions (
    id_hash        TEXT PRIMARY KEY,
    user_id        TEXT NOT NULL REFERENCES users(id),
    org_id         TEXT NOT NULL REFERENCES orgs(id),
    -- Synchronizer token every form of this session carries.
    csrf_token     TEXT NOT NULL,
    -- Why this person opens conversation content, asked once per session.
    access_reason  TEXT,
    created_at     BIGINT NOT NULL,
    last_seen_at   BIGINT NOT NULL,
    -- Absolute end; the idle limit is checked against last_seen_at.
    expires_at     BIGINT NOT NULL,
    ended_at       BIGINT
);
CREATE INDEX console_sessions_user ON console_sessions (user_id);

-- A manager's judgement of an alert: was it a real risk?
ALTER TABLE alerts ADD COLUMN verdict TEXT CHECK (verdict IN ('confirmed', 'false_positive'));
ALTER TABLE alerts ADD COLUMN verdict_by TEXT;
ALTER TABLE alerts ADD COLUMN verdict_at BIGINT;
CREATE INDEX alerts_org_rep ON alerts (org_id, rep_user_id, created_at);
