-- Publishing PostGIS relations in place (#16): tables, views, materialized views and
-- set-returning functions the platform does not own, served without a copy.
--
-- * gis_meta.layers.relation describes where a published layer's rows live (schema, name,
--   geometry column, key, function arguments, how changes are noticed).  Ingested layers
--   keep relation NULL and their rows in gis_data.<table_name>.
-- * gis_meta.layer_changes is the change log: one row per statement that changed a
--   published relation (or, later, an edit), with the lon/lat extent of what changed
--   (NULL: anywhere).  Cached tiles outside every newer change's extent stay valid.  xid
--   lets a reader decide whether a change is inside a snapshot (an overview's, say).
-- * gis_meta.relation_changed() is the statement-level trigger the platform installs on a
--   published table where it may (owner, or granted TRIGGER).  It runs as the owner of
--   this schema (SECURITY DEFINER), so the other systems writing the table need no rights
--   on gis_meta; it can only append to the change log.

ALTER TABLE gis_meta.layers ADD COLUMN relation jsonb;

CREATE TABLE gis_meta.layer_changes (
    id        bigserial PRIMARY KEY,
    layer_id  text NOT NULL REFERENCES gis_meta.layers (id) ON DELETE CASCADE,
    version   bigint NOT NULL DEFAULT nextval('gis_meta.data_version_seq'),
    xid       xid8 NOT NULL DEFAULT pg_current_xact_id(),
    extent    double precision[] CHECK (extent IS NULL OR cardinality(extent) = 4),
    source    text NOT NULL DEFAULT 'trigger',
    at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX layer_changes_layer ON gis_meta.layer_changes (layer_id, id);

-- Relations without a change trigger are polled: the last signal seen (statistics counters,
-- file node, column list) per layer, so a new poller (another worker) carries on from it.
CREATE TABLE gis_meta.relation_signals (
    layer_id    text PRIMARY KEY REFERENCES gis_meta.layers (id) ON DELETE CASCADE,
    signal      text NOT NULL,
    checked_at  timestamptz NOT NULL DEFAULT now()
);

-- Relations a person unpublished from a watched schema: discovery leaves them alone.
CREATE TABLE gis_meta.publish_ignored (
    schema_name text NOT NULL,
    name        text NOT NULL,
    at          timestamptz NOT NULL DEFAULT now(),
    actor       text,
    PRIMARY KEY (schema_name, name)
);

-- The snapshot an overview was built in: a change whose transaction is visible in it is
-- already in the overview.
ALTER TABLE tiles.overviews ADD COLUMN snapshot pg_snapshot;

-- The trigger function, with PostGIS' schema on its search path (found now, not trusted
-- from the caller's path: the function runs with the owner's rights).
DO $migration$
DECLARE
    postgis_schema text;
BEGIN
    SELECT n.nspname INTO postgis_schema FROM pg_extension e
    JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'postgis';
    EXECUTE format($fn$
CREATE FUNCTION gis_meta.relation_changed() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, %1$I, pg_temp AS $body$
DECLARE
    rel   text := quote_ident(TG_TABLE_SCHEMA) || '.' || quote_ident(TG_TABLE_NAME);
    col   text;
    tbl   text;
    part  geometry;
    srid  integer;
    acc   geometry;
    whole boolean := TG_OP = 'TRUNCATE' OR TG_NARGS = 0;
    box   double precision[];
BEGIN
    -- No layer reads this table any more (its triggers outlived an unpublish): nothing to do.
    IF NOT EXISTS (SELECT 1 FROM gis_meta.layers l WHERE l.relation IS NOT NULL
                   AND ((l.relation->>'schema' = TG_TABLE_SCHEMA AND l.relation->>'name' = TG_TABLE_NAME)
                        OR l.relation->'parts' ? rel OR l.relation->'depends_on' ? rel)) THEN
        RETURN NULL;
    END IF;
    IF NOT whole THEN
        -- TG_ARGV: the geometry columns of the layers published from this table; the
        -- transition tables: the rows as they are now and as they were.
        <<measure>>
        FOREACH col IN ARRAY TG_ARGV LOOP
            FOREACH tbl IN ARRAY CASE TG_OP WHEN 'INSERT' THEN ARRAY['new_rows']
                                             WHEN 'DELETE' THEN ARRAY['old_rows']
                                             ELSE ARRAY['new_rows', 'old_rows'] END LOOP
                EXECUTE format('SELECT ST_Extent(%%1$I::geometry)::geometry, '
                               'max(ST_SRID(%%1$I::geometry)) FROM %%2$I', col, tbl) INTO part, srid;
                CONTINUE WHEN part IS NULL;
                IF coalesce(srid, 0) = 0 THEN
                    whole := true;
                    EXIT measure;
                END IF;
                part := ST_Transform(ST_Segmentize(ST_SetSRID(part, srid),
                    greatest(ST_XMax(part) - ST_XMin(part), ST_YMax(part) - ST_YMin(part), 1e-9) / 8), 4326);
                acc := CASE WHEN acc IS NULL THEN part::box2d::geometry
                            ELSE ST_Collect(acc, part::box2d::geometry)::box2d::geometry END;
            END LOOP;
        END LOOP;
        IF NOT whole AND acc IS NULL THEN
            RETURN NULL;            -- the statement changed no row
        END IF;
        IF NOT whole THEN
            box := ARRAY[ST_XMin(acc), ST_YMin(acc), ST_XMax(acc), ST_YMax(acc)];
        END IF;
    END IF;
    -- Layers published from this table (or one of its partitions) get the extent; views
    -- and functions that read it change anywhere.
    INSERT INTO gis_meta.layer_changes (layer_id, extent, source)
    SELECT l.id,
           CASE WHEN l.relation->>'kind' IN ('table', 'partitioned table')
                 AND ((l.relation->>'schema' = TG_TABLE_SCHEMA AND l.relation->>'name' = TG_TABLE_NAME)
                      OR l.relation->'parts' ? rel)
                THEN box END,
           'trigger'
    FROM gis_meta.layers l
    WHERE l.relation IS NOT NULL
      AND ((l.relation->>'schema' = TG_TABLE_SCHEMA AND l.relation->>'name' = TG_TABLE_NAME)
           OR l.relation->'parts' ? rel OR l.relation->'depends_on' ? rel);
    PERFORM pg_notify('gis_catalog', 'changes');
    RETURN NULL;
END $body$
$fn$, postgis_schema);
END $migration$;

REVOKE EXECUTE ON FUNCTION gis_meta.relation_changed() FROM PUBLIC;

-- The app login installs these triggers on relations it may (CREATE TRIGGER needs EXECUTE
-- on the function) and reads and appends to the log (the default privileges of gis_meta);
-- grant_app_role() (run again by a restore) grants the trigger function too.
CREATE OR REPLACE FUNCTION gis_meta.grant_app_role() RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    t record;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'gis_platform_app') THEN
        RETURN;
    END IF;
    EXECUTE 'GRANT USAGE ON SCHEMA gis_meta, gis_domain TO gis_platform_app';
    EXECUTE 'GRANT USAGE, CREATE ON SCHEMA gis_data, tiles TO gis_platform_app';

    EXECUTE 'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA gis_meta, gis_domain '
            'TO gis_platform_app';
    -- The audit log: append and search only.  The migration history: read only.
    EXECUTE 'REVOKE ALL ON gis_meta.audit_log, gis_meta.schema_migrations FROM gis_platform_app';
    EXECUTE 'GRANT SELECT, INSERT ON gis_meta.audit_log TO gis_platform_app';
    EXECUTE 'GRANT SELECT ON gis_meta.schema_migrations TO gis_platform_app';
    -- Keys: created, revoked (UPDATE) and used; never deleted (they are on the record).
    EXECUTE 'REVOKE DELETE ON gis_meta.api_keys FROM gis_platform_app';
    -- Permit history is append-only like the audit log.
    EXECUTE 'REVOKE UPDATE, DELETE ON gis_domain.permit_status_history FROM gis_platform_app';
    EXECUTE 'GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA gis_meta, gis_domain, '
            'gis_data, tiles TO gis_platform_app';
    EXECUTE 'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA gis_data, tiles '
            'TO gis_platform_app';

    -- Tables the owner creates in later migrations get the same grants (those that must
    -- be append-only revoke them explicitly, as above).
    EXECUTE 'ALTER DEFAULT PRIVILEGES IN SCHEMA gis_meta, gis_domain GRANT SELECT, INSERT, '
            'UPDATE, DELETE ON TABLES TO gis_platform_app';
    EXECUTE 'ALTER DEFAULT PRIVILEGES IN SCHEMA gis_meta, gis_domain, gis_data, tiles GRANT '
            'USAGE, SELECT, UPDATE ON SEQUENCES TO gis_platform_app';

    -- Published relations (0008): install change triggers, read and append to the log.
    EXECUTE 'GRANT EXECUTE ON FUNCTION gis_meta.relation_changed() TO gis_platform_app';

    -- Layer tables and overviews ingested before this migration (by the owner) become the
    -- app's, so it can replace and drop them like the ones it ingests itself.  Views the
    -- platform maintains from other data (active_works) stay the owner's.
    FOR t IN SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname IN ('gis_data', 'tiles') AND c.relkind IN ('r', 'p')
               AND c.relname <> 'overviews'
    LOOP
        EXECUTE format('ALTER TABLE %I.%I OWNER TO gis_platform_app', t.nspname, t.relname);
    END LOOP;
END $$;
SELECT gis_meta.grant_app_role();
