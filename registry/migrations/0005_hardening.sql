-- Issue 13: a voucher's u_id keeps its JSON type; the audit log survives TRUNCATE too.

-- A hotspot u_id given as a JSON number is shown as that number again (the text column holds its
-- digits, so filtering by u_id matches either spelling).
ALTER TABLE tokens ADD COLUMN external_ref_numeric boolean NOT NULL DEFAULT false;

-- TRUNCATE fires no row trigger: a statement trigger refuses it, as the row trigger of 0001 refuses
-- UPDATE and DELETE. (Its owner could still drop the triggers; the services' own role, set up by
-- `tokenhub migrate` with TOKENHUB_SERVICE_DB_USER, owns nothing and may do neither.)
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
