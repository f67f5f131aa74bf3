-- Idempotency keys of calls are the uploader's own: the column now holds
-- `<uploaded_by>/<key>`, so the unique (org_id, idempotency_key) index lets
-- two people of one organisation use the same key without one receiving the
-- other's call (security review, issue 21 finding 2).
UPDATE calls SET idempotency_key = uploaded_by || '/' || idempotency_key
WHERE idempotency_key IS NOT NULL;
