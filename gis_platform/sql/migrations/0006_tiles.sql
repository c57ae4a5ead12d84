-- Tile overviews (issue 4): pre-generalised copies of big vector layers, one table per
-- (layer, data version, zoom level, spec), built by tile_server.overviews.
-- A row is inserted in the same transaction that creates the table, so a listed overview
-- is always complete; NOTIFY gis_tiles tells every worker to reload the list.
CREATE SCHEMA IF NOT EXISTS tiles;

CREATE TABLE tiles.overviews (
    table_name    text PRIMARY KEY,
    layer_id      text NOT NULL,
    data_version  bigint NOT NULL,
    zoom          smallint NOT NULL CHECK (zoom BETWEEN 0 AND 24),
    spec          text NOT NULL,
    features      bigint NOT NULL DEFAULT 0,
    vertices      bigint NOT NULL DEFAULT 0,
    source_features bigint NOT NULL DEFAULT 0,
    build_ms      integer NOT NULL DEFAULT 0,
    built_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (layer_id, data_version, zoom, spec)
);
