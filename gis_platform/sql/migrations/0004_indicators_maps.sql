-- Policy indicators (per area unit and year) and versioned policy maps (#6).

-- An area unit is a catalogued polygon layer whose features carry a stable area code:
-- districts (gu), neighbourhoods (dong), a hexagon grid...  Identifiers used in SQL
-- (table, code column) always come from the layer catalog, never from a request.
CREATE TABLE gis_meta.area_units (
    id           text PRIMARY KEY CHECK (id ~ '^[a-z][a-z0-9_]{0,62}$'),
    layer_id     text NOT NULL REFERENCES gis_meta.layers (id) ON DELETE CASCADE,
    code_column  text NOT NULL,
    name_column  text,
    title        text NOT NULL,
    title_ko     text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE gis_meta.indicators (
    id             text PRIMARY KEY CHECK (id ~ '^[a-z][a-z0-9_]{0,62}$'),
    name_ko        text NOT NULL,
    name_en        text NOT NULL,
    unit           text NOT NULL DEFAULT '',
    source         text NOT NULL DEFAULT '',
    polarity       text NOT NULL DEFAULT 'neutral'
                   CHECK (polarity IN ('higher_is_better', 'higher_is_worse', 'neutral')),
    description_ko text NOT NULL DEFAULT '',
    description_en text NOT NULL DEFAULT '',
    method         jsonb,                    -- how it was computed (aggregation), if it was
    -- The most restrictive access level of the data it was computed from: an aggregate of a
    -- restricted layer is not public just because it is an aggregate.
    access_level   text NOT NULL DEFAULT 'public'
                   CHECK (access_level IN ('public', 'internal', 'restricted')),
    data_version   bigint NOT NULL DEFAULT nextval('gis_meta.data_version_seq'),
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

-- One value per indicator, area unit, area code and year.  NULL = no data for that area.
CREATE TABLE gis_meta.indicator_values (
    indicator_id text NOT NULL REFERENCES gis_meta.indicators (id) ON DELETE CASCADE,
    unit_id      text NOT NULL REFERENCES gis_meta.area_units (id) ON DELETE CASCADE,
    area_code    text NOT NULL,
    year         smallint NOT NULL CHECK (year BETWEEN 1900 AND 2200),
    value        double precision,
    PRIMARY KEY (indicator_id, unit_id, year, area_code)
);

-- Maps: one row per map; every saved spec is a new immutable version that records the
-- data versions (indicator, layers) it was built from.  The public sees only the
-- published version of a published map; drafts are 404 to them.
CREATE TABLE gis_meta.policy_maps (
    id                text PRIMARY KEY CHECK (id ~ '^[a-z][a-z0-9_-]{0,62}$'),
    latest_version    integer NOT NULL DEFAULT 0,
    published_version integer,
    created_by        text NOT NULL DEFAULT 'system',
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    published_at      timestamptz
);

CREATE TABLE gis_meta.policy_map_versions (
    map_id        text NOT NULL REFERENCES gis_meta.policy_maps (id) ON DELETE CASCADE,
    version       integer NOT NULL CHECK (version >= 1),
    spec          jsonb NOT NULL,
    data_versions jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_by    text NOT NULL DEFAULT 'system',
    created_at    timestamptz NOT NULL DEFAULT now(),
    published_at  timestamptz,             -- set when this version was (ever) published
    PRIMARY KEY (map_id, version)
);
