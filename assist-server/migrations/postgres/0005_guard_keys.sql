-- Device-side rules (`GET /v1/guard/rules`).
--
-- server_keys: one signing key per purpose (name `guard-rules`), shared by
-- every server node on the same database. The first node to need a key
-- inserts it (ON CONFLICT DO NOTHING) and every node then reads the row, so
-- concurrent first use still yields one key. `secret` and `public_key` are
-- standard base64 (32-byte Ed25519 seed and public key).
CREATE TABLE server_keys (
    name        TEXT PRIMARY KEY,
    algorithm   TEXT NOT NULL,
    secret      TEXT NOT NULL,
    public_key  TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

-- guard_rule_sets: the published versions of each organisation's rule set.
-- A new row (version + 1) is written the first time a request sees a rule
-- set whose digest differs from the latest row, so versions only grow and a
-- device can refuse an older signed document.
CREATE TABLE guard_rule_sets (
    org_id        TEXT NOT NULL REFERENCES orgs(id),
    version       BIGINT NOT NULL,
    rules_sha256  TEXT NOT NULL,
    rule_count    BIGINT NOT NULL,
    issued_at     BIGINT NOT NULL,
    PRIMARY KEY (org_id, version)
);
