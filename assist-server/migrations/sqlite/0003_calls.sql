-- Calls: uploaded recordings, their transcription job and the transcript.
CREATE TABLE calls (
    id               TEXT PRIMARY KEY,
    org_id           TEXT NOT NULL REFERENCES orgs(id),
    rep_user_id      TEXT NOT NULL REFERENCES users(id),
    team_id          TEXT REFERENCES teams(id),
    device_id        TEXT REFERENCES devices(id),
    uploaded_by      TEXT NOT NULL REFERENCES users(id),
    customer_ref     TEXT,
    direction        TEXT NOT NULL CHECK (direction IN ('inbound', 'outbound', 'unknown')),
    started_at       BIGINT,
    channel_layout   TEXT NOT NULL CHECK (channel_layout IN ('mono', 'rep_left', 'rep_right')),
    language         TEXT,
    audio_path       TEXT NOT NULL,
    audio_bytes      BIGINT NOT NULL,
    audio_sha256     TEXT NOT NULL,
    audio_codec      TEXT NOT NULL,
    duration_ms      BIGINT NOT NULL,
    filename         TEXT,
    job_id           BIGINT,
    idempotency_key  TEXT,
    detected_language TEXT,
    model            TEXT,
    transcribed_at   BIGINT,
    created_at       BIGINT NOT NULL,
    UNIQUE (org_id, idempotency_key)
);
CREATE INDEX calls_org_rep ON calls (org_id, rep_user_id, created_at);
CREATE INDEX calls_org_team ON calls (org_id, team_id, created_at);

CREATE TABLE call_segments (
    call_id      TEXT NOT NULL REFERENCES calls(id) ON DELETE CASCADE,
    seq          BIGINT NOT NULL,
    start_ms     BIGINT NOT NULL,
    end_ms       BIGINT NOT NULL,
    channel      BIGINT,
    speaker      TEXT NOT NULL CHECK (speaker IN ('rep', 'customer', 'unknown')),
    text         TEXT NOT NULL,
    avg_logprob  DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (call_id, seq)
);
