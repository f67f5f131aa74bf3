-- Post-call analysis: one document per call (summary, needs, objections,
-- tasks, risk tags, sentiment, coaching metrics) and the follow-up tasks it
-- found, which reps work through the API.

CREATE TABLE analyses (
    id               TEXT PRIMARY KEY,
    org_id           TEXT NOT NULL REFERENCES orgs(id),
    call_id          TEXT NOT NULL UNIQUE,
    rep_user_id      TEXT NOT NULL,
    team_id          TEXT,
    document         TEXT NOT NULL,
    metrics          TEXT NOT NULL,
    llm_status       TEXT NOT NULL,
    model            TEXT,
    call_started_at  BIGINT NOT NULL,
    created_at       BIGINT NOT NULL
);
CREATE INDEX analyses_rep ON analyses (org_id, rep_user_id, call_started_at);
CREATE INDEX analyses_team ON analyses (org_id, team_id, call_started_at);

CREATE TABLE tasks (
    id               TEXT PRIMARY KEY,
    org_id           TEXT NOT NULL REFERENCES orgs(id),
    rep_user_id      TEXT NOT NULL,
    team_id          TEXT,
    call_id          TEXT,
    title            TEXT NOT NULL,
    owner            TEXT NOT NULL CHECK (owner IN ('rep', 'customer')),
    due_at           BIGINT,
    due_text         TEXT,
    source_quote     TEXT,
    origin           TEXT NOT NULL CHECK (origin IN ('llm', 'rule', 'both')),
    status           TEXT NOT NULL CHECK (status IN ('open', 'done', 'dismissed')),
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    completed_at     BIGINT
);
CREATE INDEX tasks_rep ON tasks (org_id, rep_user_id, status, due_at);
CREATE INDEX tasks_call ON tasks (call_id);
