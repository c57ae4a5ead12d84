-- Platform schemas, the layer catalog and the audit log.
CREATE EXTENSION IF NOT EXISTS postgis;

-- gis_meta: the platform's own tables.  gis_data: one table per vector layer.
CREATE SCHEMA IF NOT EXISTS gis_meta;
CREATE SCHEMA IF NOT EXISTS gis_data;

CREATE TABLE gis_meta.layers (
    id              text PRIMARY KEY CHECK (id ~ '^[a-z][a-z0-9_]{0,62}$'),
    title           text NOT NULL,
    title_ko        text,
    description     text NOT NULL DEFAULT '',
    description_ko  text,
    keywords        text[] NOT NULL DEFAULT '{}',
    source          text,
    licence         text,
    attribution     text,
    kind            text NOT NULL CHECK (kind IN ('vector', 'raster')),
    geometry_type   text,
    storage_srid    integer NOT NULL DEFAULT 4326,
    source_crs      text,
    table_name      text UNIQUE,
    raster_path     text,
    extent          double precision[] CHECK (extent IS NULL OR cardinality(extent) = 4),
    feature_count   bigint NOT NULL DEFAULT 0,
    schema          jsonb NOT NULL DEFAULT '[]'::jsonb,
    raster_info     jsonb,
    access_level    text NOT NULL DEFAULT 'public' CHECK (access_level IN ('public', 'internal', 'restricted')),
    minzoom         smallint NOT NULL DEFAULT 0 CHECK (minzoom BETWEEN 0 AND 24),
    maxzoom         smallint NOT NULL DEFAULT 22 CHECK (maxzoom BETWEEN 0 AND 24),
    default_style   jsonb,
    time_column     text,
    data_version    bigint NOT NULL DEFAULT 1,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CHECK (minzoom <= maxzoom)
);

-- A global sequence makes data versions unique across layers and never reused, even if a
-- layer is dropped and created again: a cached tile keyed on an old version can never match.
CREATE SEQUENCE gis_meta.data_version_seq;

CREATE TABLE gis_meta.audit_log (
    id           bigserial PRIMARY KEY,
    at           timestamptz NOT NULL DEFAULT now(),
    actor        text NOT NULL DEFAULT 'anonymous',
    roles        text[] NOT NULL DEFAULT '{}',
    action       text NOT NULL,           -- read | write | delete | login | ...
    endpoint     text,
    layer_id     text,
    feature_id   text,
    area         geometry(Geometry, 4326),
    result_size  bigint,
    status       integer,
    client_ip    inet,
    details      jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX audit_log_at_idx ON gis_meta.audit_log (at);
CREATE INDEX audit_log_layer_idx ON gis_meta.audit_log (layer_id, at);

-- Append-only: updates and deletes of audit rows are refused at the database level.
CREATE FUNCTION gis_meta.audit_log_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'gis_meta.audit_log is append-only';
END $$;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON gis_meta.audit_log
    FOR EACH ROW EXECUTE FUNCTION gis_meta.audit_log_immutable();

-- Every catalog change is announced, so each worker's layer registry (and with it the
-- data versions that key the tile cache) refreshes at once, across processes.
CREATE FUNCTION gis_meta.layers_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('gis_catalog', coalesce(NEW.id, OLD.id));
    RETURN NULL;
END $$;
CREATE TRIGGER layers_changed AFTER INSERT OR UPDATE OR DELETE ON gis_meta.layers
    FOR EACH ROW EXECUTE FUNCTION gis_meta.layers_notify();
