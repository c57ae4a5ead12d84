-- Bulk loads in the history of editable layers (#17): one change set per ingest.
--
-- gis_meta.layer_loads records every ingest into a layer (create, replace, append): who,
-- when, why, from which file, how many features.  On an editable layer a replace keeps the
-- rows it replaces: the previous table is renamed (gis_data._g<change set>_<table>, its
-- indexes with it) instead of dropped, and its row here says from when to when those rows
-- were the layer, so "as of" reads before the replace read them.  An append records every
-- appended feature as a 'create' version in gis_meta.feature_versions.
--
-- gis_meta.layers.loaded_at is when the current rows were loaded: the time of the 'loaded'
-- version a feature gets before its first edit, and the start of the current generation.

ALTER TABLE gis_meta.layers ADD COLUMN loaded_at timestamptz;
UPDATE gis_meta.layers SET loaded_at = created_at;
ALTER TABLE gis_meta.layers ALTER COLUMN loaded_at SET DEFAULT now();

CREATE TABLE gis_meta.layer_loads (
    id              bigserial PRIMARY KEY,
    layer_id        text NOT NULL REFERENCES gis_meta.layers (id) ON DELETE CASCADE,
    change_set      bigint NOT NULL,
    mode            text NOT NULL CHECK (mode IN ('create', 'replace', 'append')),
    actor           text NOT NULL,
    reason          text,
    source          text,
    at              timestamptz NOT NULL,
    features        bigint NOT NULL,
    -- replace on an editable layer: the rows replaced, kept, and since when they had been
    -- the layer (they were until `at`); their attributes (the layer's schema then).
    archived_table  text,
    valid_from      timestamptz,
    archived_schema jsonb
);
CREATE INDEX layer_loads_layer ON gis_meta.layer_loads (layer_id, at);

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'gis_platform_app') THEN
        REVOKE UPDATE, DELETE ON gis_meta.layer_loads FROM gis_platform_app;
        GRANT SELECT, INSERT ON gis_meta.layer_loads TO gis_platform_app;
        GRANT USAGE, SELECT ON SEQUENCE gis_meta.layer_loads_id_seq TO gis_platform_app;
    END IF;
END $$;

-- Append-only like the feature versions (rows go only with their layer).
CREATE TRIGGER layer_loads_no_rewrite BEFORE UPDATE OR DELETE ON gis_meta.layer_loads
    FOR EACH ROW EXECUTE FUNCTION gis_meta.feature_versions_immutable();
