-- Security (#7): audit search indexes, TRUNCATE protection, and key bookkeeping.

-- Searches by principal ("what did this key read?") and the hourly digest (reads per actor).
CREATE INDEX IF NOT EXISTS audit_log_actor_idx ON gis_meta.audit_log (actor, at);
CREATE INDEX IF NOT EXISTS audit_log_action_at_idx ON gis_meta.audit_log (action, at);

-- Append-only also against TRUNCATE (0001's row trigger covers UPDATE and DELETE only).
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON gis_meta.audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION gis_meta.audit_log_immutable();

-- Listing active keys and expiring them.
CREATE INDEX IF NOT EXISTS api_keys_active_idx ON gis_meta.api_keys (expires_at)
    WHERE revoked_at IS NULL;
