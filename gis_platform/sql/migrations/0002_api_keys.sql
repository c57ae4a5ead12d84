-- API keys: stored as argon2 hashes, revocable, with expiry, roles and optional scopes.
CREATE TABLE gis_meta.api_keys (
    id          text PRIMARY KEY,             -- public part of the token: gis_<id>_<secret>
    name        text NOT NULL,
    secret_hash text NOT NULL,
    roles       text[] NOT NULL CHECK (roles <@ ARRAY['citizen','staff','planner','operator','admin']::text[]),
    scopes      jsonb NOT NULL DEFAULT '{}'::jsonb,   -- {"layers": [...], "districts": [...], "owners": [...], "kinds": [...]}
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz,
    revoked_at  timestamptz,
    last_used_at timestamptz
);

CREATE FUNCTION gis_meta.api_keys_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('gis_api_keys', coalesce(NEW.id, OLD.id));
    RETURN NULL;
END $$;
CREATE TRIGGER api_keys_changed AFTER UPDATE OR DELETE ON gis_meta.api_keys
    FOR EACH ROW EXECUTE FUNCTION gis_meta.api_keys_notify();
