-- The phone side: events from devices (suggestion feedback, guard blocks,
-- privacy and outbox counts), live call-assist sessions with their final
-- transcript and the suggestions shown, and resumable recording uploads.

CREATE TABLE device_events (
    device_id    TEXT NOT NULL,
    event_id     TEXT NOT NULL,
    org_id       TEXT NOT NULL REFERENCES orgs(id),
    user_id      TEXT NOT NULL,
    kind         TEXT NOT NULL,
    payload      TEXT NOT NULL,
    occurred_at  BIGINT NOT NULL,
    received_at  BIGINT NOT NULL,
    PRIMARY KEY (device_id, event_id)
);
CREATE INDEX device_events_org ON device_events (org_id, kind, received_at);

-- One live call. `call_id` is reserved when the session starts: the
-- recording uploaded later with the same client_call_id becomes that call, so
-- live and post-call alerts of one call share it.
CREATE TABLE live_sessions (
    id              TEXT PRIMARY KEY,
    org_id          TEXT NOT NULL REFERENCES orgs(id),
    rep_user_id     TEXT NOT NULL,
    team_id         TEXT,
    device_id       TEXT NOT NULL,
    client_call_id  TEXT NOT NULL,
    call_id         TEXT NOT NULL,
    language        TEXT,
    audio_layout    TEXT NOT NULL,
    started_at      BIGINT NOT NULL,
    ended_at        BIGINT,
    end_reason      TEXT,
    UNIQUE (device_id, client_call_id)
);
CREATE INDEX live_sessions_rep ON live_sessions (org_id, rep_user_id, started_at);

CREATE TABLE live_segments (
    session_id  TEXT NOT NULL REFERENCES live_sessions(id) ON DELETE CASCADE,
    seq         BIGINT NOT NULL,
    speaker     TEXT NOT NULL,
    text        TEXT NOT NULL,
    start_ms    BIGINT NOT NULL,
    end_ms      BIGINT NOT NULL,
    source      TEXT NOT NULL CHECK (source IN ('audio', 'text')),
    utterance_id TEXT,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (session_id, seq)
);

CREATE TABLE live_suggestions (
    id           TEXT PRIMARY KEY,
    session_id   TEXT NOT NULL REFERENCES live_sessions(id) ON DELETE CASCADE,
    org_id       TEXT NOT NULL,
    rep_user_id  TEXT NOT NULL,
    team_id      TEXT,
    final_seq    BIGINT NOT NULL,
    script_id    TEXT NOT NULL,
    rank         BIGINT NOT NULL,
    score        DOUBLE PRECISION NOT NULL,
    created_at   BIGINT NOT NULL,
    feedback     TEXT CHECK (feedback IN ('used', 'dismissed')),
    feedback_id  TEXT,
    feedback_at  BIGINT
);
CREATE INDEX live_suggestions_rep ON live_suggestions (org_id, rep_user_id, created_at);

CREATE TABLE uploads (
    id           TEXT PRIMARY KEY,
    org_id       TEXT NOT NULL REFERENCES orgs(id),
    user_id      TEXT NOT NULL,
    device_id    TEXT,
    upload_key   TEXT NOT NULL,
    size         BIGINT NOT NULL,
    sha256       TEXT NOT NULL,
    filename     TEXT,
    metadata     TEXT NOT NULL,
    received     BIGINT NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('receiving', 'complete', 'failed')),
    call_id      TEXT,
    error        TEXT,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    UNIQUE (org_id, user_id, upload_key)
);
