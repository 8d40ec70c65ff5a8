-- The audit log's one insert, used by every service that writes it (shared/audit.py).

-- name: insert_audit
-- One event per token in $4 (deleteAll names every token it removed), or one event about no
-- token when $4 is NULL.
INSERT INTO audit_log (event, actor_id, subject_id, token_id, kind, client_addr, details)
SELECT $1::text, $2::bigint, $3::bigint, v.token_id, $5::text, $6::text, $7::jsonb
FROM unnest(coalesce($4::bigint[], ARRAY[NULL]::bigint[])) AS v(token_id);
