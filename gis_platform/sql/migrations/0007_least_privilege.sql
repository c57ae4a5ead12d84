-- Security, second round (#15): the server runs as a least-privilege role, and new layers
-- and indicators are private until someone publishes them.
--
-- Two database logins:
--   * the OWNER (whoever runs the migrations: the embedded cluster's superuser `gis`, or
--     the deployment's schema owner) owns gis_meta, gis_domain and the audit log;
--   * `gis_platform_app` is what the web server and the command line connect as.  It
--     reads and writes the catalog and the data, creates and drops the layer tables it
--     ingests (gis_data) and the overviews (tiles), and may only INSERT into and SELECT from
--     gis_meta.audit_log: it owns neither that table nor its triggers, so it can neither
--     disable them nor switch session_replication_role (superuser only) to rewrite history.

ALTER TABLE gis_meta.layers ALTER COLUMN access_level SET DEFAULT 'internal';
ALTER TABLE gis_meta.indicators ALTER COLUMN access_level SET DEFAULT 'internal';

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'gis_platform_app') THEN
        BEGIN
            -- LOGIN, but no password yet: the embedded cluster sets one at every start, an
            -- operator with ALTER ROLE gis_platform_app PASSWORD '...'.
            CREATE ROLE gis_platform_app LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS;
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE NOTICE 'cannot create role gis_platform_app (no CREATEROLE): create it as '
                         'an administrator and run the migrations again; until then the '
                         'server runs with the owner''s login';
        END;
    END IF;
END $$;

-- The grants, as a function: run now, and again by `gis-platform restore` (a dump is
-- restored without privileges, by the owner).
CREATE FUNCTION gis_meta.grant_app_role() RETURNS void LANGUAGE plpgsql AS $$
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
REVOKE EXECUTE ON FUNCTION gis_meta.grant_app_role() FROM PUBLIC;
SELECT gis_meta.grant_app_role();

-- Bulk loads (the demo's permits) used to switch the active-works refresh off with ALTER
-- TABLE ... DISABLE TRIGGER, which needs the table's owner.  A transaction-local setting
-- does the same for the least-privilege login: SET LOCAL gis.bulk_load = 'on'.
CREATE OR REPLACE FUNCTION gis_domain.active_works_touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF coalesce(current_setting('gis.bulk_load', true), '') = 'on' THEN
        RETURN NULL;
    END IF;
    UPDATE gis_meta.layers l
    SET data_version = nextval('gis_meta.data_version_seq'), updated_at = now(),
        feature_count = s.n, extent = s.ext
    FROM (SELECT count(*) AS n,
                 CASE WHEN count(*) = 0 THEN NULL ELSE
                 ARRAY[ST_XMin(ST_Extent(geom)), ST_YMin(ST_Extent(geom)),
                       ST_XMax(ST_Extent(geom)), ST_YMax(ST_Extent(geom))] END AS ext
          FROM gis_data.active_works) s
    WHERE l.id = 'active_works' AND l.table_name = 'active_works';
    RETURN NULL;
END $$;
