-- Chats captured on work phones, the risk events found in chats and call
-- transcripts, the alerts raised from them (with an append-only event log
-- that the SSE stream replays), and outgoing webhooks with a delivery log.

CREATE TABLE conversations (
    org_id           TEXT NOT NULL REFERENCES orgs(id),
    id               TEXT NOT NULL,
    rep_user_id      TEXT NOT NULL REFERENCES users(id),
    team_id          TEXT REFERENCES teams(id),
    device_id        TEXT REFERENCES devices(id),
    channel          TEXT NOT NULL CHECK (channel IN ('wechat', 'wecom', 'sms', 'other')),
    customer_ref     TEXT,
    created_at       BIGINT NOT NULL,
    last_message_at  BIGINT NOT NULL,
    PRIMARY KEY (org_id, id)
);
CREATE INDEX conversations_rep ON conversations (org_id, rep_user_id, last_message_at);

CREATE TABLE chat_messages (
    id                 TEXT PRIMARY KEY,
    org_id             TEXT NOT NULL,
    conversation_id    TEXT NOT NULL,
    client_message_id  TEXT NOT NULL,
    sender             TEXT NOT NULL CHECK (sender IN ('rep', 'customer')),
    text               TEXT NOT NULL,
    sent_at            BIGINT NOT NULL,
    received_at        BIGINT NOT NULL,
    UNIQUE (org_id, conversation_id, client_message_id),
    FOREIGN KEY (org_id, conversation_id) REFERENCES conversations (org_id, id)
);
CREATE INDEX chat_messages_conv ON chat_messages (org_id, conversation_id, sent_at);

CREATE TABLE risk_events (
    id               TEXT PRIMARY KEY,
    org_id           TEXT NOT NULL REFERENCES orgs(id),
    source           TEXT NOT NULL CHECK (source IN ('chat', 'call')),
    conversation_id  TEXT,
    message_id       TEXT,
    call_id          TEXT,
    segment_seq      BIGINT,
    rep_user_id      TEXT NOT NULL,
    team_id          TEXT,
    speaker          TEXT NOT NULL,
    category         TEXT NOT NULL,
    severity         TEXT NOT NULL,
    action           TEXT NOT NULL,
    detector         TEXT NOT NULL,
    rule             TEXT NOT NULL,
    confidence       DOUBLE PRECISION NOT NULL,
    char_start       BIGINT NOT NULL,
    char_end         BIGINT NOT NULL,
    start_ms         BIGINT,
    end_ms           BIGINT,
    snippet          TEXT NOT NULL,
    negated          BIGINT NOT NULL,
    suppressed       TEXT,
    alert_id         TEXT,
    created_at       BIGINT NOT NULL
);
CREATE INDEX risk_events_conv ON risk_events (org_id, conversation_id);
CREATE INDEX risk_events_call ON risk_events (call_id);

CREATE TABLE alerts (
    id               TEXT PRIMARY KEY,
    org_id           TEXT NOT NULL REFERENCES orgs(id),
    team_id          TEXT,
    rep_user_id      TEXT NOT NULL,
    source           TEXT NOT NULL CHECK (source IN ('chat', 'call')),
    conversation_id  TEXT,
    call_id          TEXT,
    category         TEXT NOT NULL,
    severity         TEXT NOT NULL,
    first_event_id   TEXT NOT NULL,
    snippet          TEXT NOT NULL,
    occurrences      BIGINT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('open', 'acknowledged', 'resolved')),
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    last_seen_at     BIGINT NOT NULL,
    acknowledged_by  TEXT,
    acknowledged_at  BIGINT,
    resolved_by      TEXT,
    resolved_at      BIGINT,
    note             TEXT
);
CREATE INDEX alerts_org_created ON alerts (org_id, created_at);
CREATE INDEX alerts_dedup ON alerts (org_id, conversation_id, call_id, category, status);

-- Every change to an alert, in commit order: the SSE stream's event ids.
CREATE TABLE alert_log (
    seq        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id     TEXT NOT NULL,
    team_id    TEXT,
    alert_id   TEXT NOT NULL,
    kind       TEXT NOT NULL,
    payload    TEXT NOT NULL,
    at         BIGINT NOT NULL
);
CREATE INDEX alert_log_org ON alert_log (org_id, seq);

CREATE TABLE webhooks (
    id               TEXT PRIMARY KEY,
    org_id           TEXT NOT NULL REFERENCES orgs(id),
    url              TEXT NOT NULL,
    secret           TEXT NOT NULL,
    team_id          TEXT REFERENCES teams(id),
    min_severity     TEXT NOT NULL,
    events           TEXT NOT NULL,
    description      TEXT,
    active           BIGINT NOT NULL,
    created_by       TEXT NOT NULL,
    created_at       BIGINT NOT NULL
);
CREATE INDEX webhooks_org ON webhooks (org_id);

CREATE TABLE webhook_deliveries (
    id               TEXT PRIMARY KEY,
    org_id           TEXT NOT NULL,
    webhook_id       TEXT NOT NULL REFERENCES webhooks(id),
    alert_id         TEXT NOT NULL,
    event_seq        BIGINT NOT NULL,
    event            TEXT NOT NULL,
    payload          TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts         BIGINT NOT NULL,
    last_status      BIGINT,
    last_error       TEXT,
    job_id           BIGINT,
    created_at       BIGINT NOT NULL,
    last_attempt_at  BIGINT,
    delivered_at     BIGINT
);
CREATE INDEX webhook_deliveries_hook ON webhook_deliveries (webhook_id, created_at);
CREATE INDEX webhook_deliveries_status ON webhook_deliveries (status);
