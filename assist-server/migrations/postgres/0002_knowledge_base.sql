-- Knowledge base: scripts and the risk lexicon, one row per item plus every
-- version. The head version is what trainers edit; the approved version is
-- what reaches phones (and stays live while an edit is in review).

CREATE TABLE kb_items (
    id                TEXT PRIMARY KEY,
    org_id            TEXT NOT NULL REFERENCES orgs(id),
    kind              TEXT NOT NULL CHECK (kind IN ('script', 'lexicon')),
    external_id       TEXT,
    status            TEXT NOT NULL CHECK (status IN ('draft', 'in_review', 'approved', 'retired')),
    head_version      BIGINT NOT NULL,
    approved_version  BIGINT,
    title             TEXT NOT NULL,
    label             TEXT NOT NULL,
    language          TEXT NOT NULL,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL,
    UNIQUE (org_id, kind, external_id)
);
CREATE INDEX kb_items_list ON kb_items (org_id, kind, status);

CREATE TABLE kb_versions (
    item_id      TEXT NOT NULL REFERENCES kb_items(id),
    version      BIGINT NOT NULL,
    content      TEXT NOT NULL,
    author_id    TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (item_id, version)
);

-- Every workflow step, for the history: who moved which version where, and why.
CREATE TABLE kb_events (
    item_id      TEXT NOT NULL REFERENCES kb_items(id),
    version      BIGINT NOT NULL,
    from_status  TEXT,
    to_status    TEXT NOT NULL,
    actor_id     TEXT NOT NULL,
    note         TEXT,
    at           BIGINT NOT NULL
);
CREATE INDEX kb_events_item ON kb_events (item_id, at);
