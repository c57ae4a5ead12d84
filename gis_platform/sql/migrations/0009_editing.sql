-- Editing features (#17): layers marked editable take OGC API Features Part 4 writes, and
-- every version of every edited feature is kept.
--
-- gis_meta.feature_versions holds, per (layer, feature id), each state a write left: the
-- attributes and geometry after it (NULL for a deletion: a tombstone), who, when, why, and
-- the version it replaced.  A feature edited for the first time first gets its state as it
-- was loaded ('loaded'), so "as of" reads before the edit find it.  Versions come from the
-- catalog's sequence (unique across layers); a change set groups the versions one request
-- wrote.  Append-only for the platform's login, like the audit log.

ALTER TABLE gis_meta.layers ADD COLUMN editable boolean NOT NULL DEFAULT false;

CREATE SEQUENCE gis_meta.change_set_seq;

CREATE TABLE gis_meta.feature_versions (
    id          bigserial PRIMARY KEY,
    layer_id    text NOT NULL REFERENCES gis_meta.layers (id) ON DELETE CASCADE,
    fid         text NOT NULL,
    version     bigint NOT NULL DEFAULT nextval('gis_meta.data_version_seq'),
    change_set  bigint NOT NULL,
    op          text NOT NULL CHECK (op IN ('loaded', 'create', 'replace', 'update', 'delete', 'restore')),
    actor       text NOT NULL,
    reason      text,
    at          timestamptz NOT NULL DEFAULT now(),
    properties  jsonb,
    geom        geometry,
    previous    bigint
);
CREATE INDEX feature_versions_feature ON gis_meta.feature_versions (layer_id, fid, version DESC);
CREATE INDEX feature_versions_time ON gis_meta.feature_versions (layer_id, at);

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'gis_platform_app') THEN
        REVOKE UPDATE, DELETE ON gis_meta.feature_versions FROM gis_platform_app;
        GRANT SELECT, INSERT ON gis_meta.feature_versions TO gis_platform_app;
        GRANT USAGE, SELECT ON SEQUENCE gis_meta.change_set_seq, gis_meta.feature_versions_id_seq
            TO gis_platform_app;
    END IF;
END $$;

-- Whatever the grants (a restore grants afresh), history is never rewritten: no update, and
-- no delete except with its layer (the cascade of deleting the layer itself).
CREATE FUNCTION gis_meta.feature_versions_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND NOT EXISTS (SELECT 1 FROM gis_meta.layers WHERE id = OLD.layer_id) THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'gis_meta.feature_versions is append-only';
END $$;
CREATE TRIGGER feature_versions_no_rewrite BEFORE UPDATE OR DELETE ON gis_meta.feature_versions
    FOR EACH ROW EXECUTE FUNCTION gis_meta.feature_versions_immutable();
