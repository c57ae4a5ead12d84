-- Domain schemas (#5): facility and road vocabularies, road-works permits with a status
-- history, and the public "active works" view.  Everything lives in schema gis_domain,
-- except the view that the layer catalog serves (gis_data.active_works).
CREATE SCHEMA IF NOT EXISTS gis_domain;

-- Facility kinds: the vocabulary every facility row must use, with the clearances the
-- dig-safety check applies.  horizontal_clearance_m: an excavation closer than this (in
-- plan) must be coordinated with the owner; vertical_clearance_m: the excavation bottom
-- must stay at least this far above the facility's top (its depth of cover).
CREATE TABLE gis_domain.facility_kinds (
    code                   text PRIMARY KEY CHECK (code ~ '^[a-z][a-z_]{1,30}$'),
    name_ko                text NOT NULL,
    name_en                text NOT NULL,
    horizontal_clearance_m double precision NOT NULL CHECK (horizontal_clearance_m >= 0),
    vertical_clearance_m   double precision NOT NULL CHECK (vertical_clearance_m >= 0),
    typical_depth_m        double precision NOT NULL CHECK (typical_depth_m > 0),
    max_depth_m            double precision NOT NULL DEFAULT 30 CHECK (max_depth_m > 0),
    colour                 text NOT NULL DEFAULT '#666666' CHECK (colour ~ '^#[0-9a-f]{6}$'),
    sort_order             smallint NOT NULL DEFAULT 100
);
INSERT INTO gis_domain.facility_kinds
    (code, name_ko, name_en, horizontal_clearance_m, vertical_clearance_m, typical_depth_m, max_depth_m, colour, sort_order)
VALUES
    ('water',    '상수도',   'Water supply',      1.0, 0.3, 1.2, 10, '#1f77b4', 10),
    ('sewer',    '하수도',   'Sewer',             1.0, 0.3, 2.4, 15, '#8c564b', 20),
    ('gas',      '도시가스', 'Gas',               2.0, 0.6, 1.2, 10, '#d4a017', 30),
    ('power',    '전력',     'Electric power',    1.5, 0.5, 1.3, 40, '#d62728', 40),
    ('telecom',  '통신',     'Telecommunication', 1.0, 0.3, 0.8, 10, '#2ca02c', 50),
    ('heating',  '지역난방', 'District heating',  1.5, 0.5, 1.6, 10, '#e377c2', 60),
    ('oil',      '송유관',   'Oil pipeline',      3.0, 1.0, 1.5, 10, '#000000', 70),
    ('other',    '기타',     'Other / unknown',   2.0, 0.5, 1.0, 40, '#7f7f7f', 90);

-- Names and codes found in source files, mapped onto the vocabulary (ingest).  Aliases are
-- compared case-insensitively after trimming; add rows for a new supplier's codes.
CREATE TABLE gis_domain.facility_kind_aliases (
    alias text PRIMARY KEY CHECK (alias = lower(btrim(alias)) AND alias <> ''),
    kind  text NOT NULL REFERENCES gis_domain.facility_kinds (code) ON UPDATE CASCADE
);
INSERT INTO gis_domain.facility_kind_aliases (alias, kind)
SELECT lower(code), code FROM gis_domain.facility_kinds
UNION ALL SELECT lower(name_ko), code FROM gis_domain.facility_kinds
UNION ALL SELECT lower(name_en), code FROM gis_domain.facility_kinds
UNION ALL SELECT a, k FROM (VALUES
    ('상수', 'water'), ('상수관', 'water'), ('상수관로', 'water'), ('급수관', 'water'), ('wtl', 'water'),
    ('하수', 'sewer'), ('하수관', 'sewer'), ('하수관로', 'sewer'), ('우수관', 'sewer'), ('swl', 'sewer'),
    ('가스', 'gas'), ('가스관', 'gas'), ('가스배관', 'gas'), ('gsl', 'gas'),
    ('전기', 'power'), ('전력선', 'power'), ('전력관로', 'power'), ('전력구', 'power'), ('electric', 'power'), ('pwl', 'power'),
    ('통신선', 'telecom'), ('통신관로', 'telecom'), ('광케이블', 'telecom'), ('tel', 'telecom'), ('ttl', 'telecom'),
    ('난방', 'heating'), ('열수송관', 'heating'), ('heat', 'heating'), ('htl', 'heating'),
    ('송유', 'oil'), ('oil pipeline', 'oil')
) AS v(a, k)
ON CONFLICT (alias) DO NOTHING;

-- Road classes with the plausible range of carriageway widths (ingest validation).
CREATE TABLE gis_domain.road_classes (
    code        text PRIMARY KEY CHECK (code ~ '^[a-z][a-z_]{1,30}$'),
    name_ko     text NOT NULL,
    name_en     text NOT NULL,
    min_width_m double precision NOT NULL CHECK (min_width_m >= 0),
    max_width_m double precision NOT NULL CHECK (max_width_m > min_width_m),
    max_lanes   smallint NOT NULL CHECK (max_lanes > 0),
    sort_order  smallint NOT NULL DEFAULT 100
);
INSERT INTO gis_domain.road_classes (code, name_ko, name_en, min_width_m, max_width_m, max_lanes, sort_order)
VALUES ('arterial',  '주간선도로', 'Arterial',  10, 80, 12, 10),
       ('collector', '보조간선도로', 'Collector', 6, 40, 6, 20),
       ('local',     '국지도로',   'Local',      3, 25, 4, 30),
       ('alley',     '골목길',     'Alley',      1, 12, 2, 40);

CREATE TABLE gis_domain.road_class_aliases (
    alias text PRIMARY KEY CHECK (alias = lower(btrim(alias)) AND alias <> ''),
    road_class text NOT NULL REFERENCES gis_domain.road_classes (code) ON UPDATE CASCADE
);
INSERT INTO gis_domain.road_class_aliases (alias, road_class)
SELECT lower(code), code FROM gis_domain.road_classes
UNION ALL SELECT lower(name_ko), code FROM gis_domain.road_classes
UNION ALL SELECT a, k FROM (VALUES
    ('광로', 'arterial'), ('대로', 'arterial'), ('간선', 'arterial'), ('주간선', 'arterial'),
    ('중로', 'collector'), ('보조간선', 'collector'), ('집산도로', 'collector'),
    ('소로', 'local'), ('국지', 'local'), ('골목', 'alley'), ('이면도로', 'alley')
) AS v(a, k)
ON CONFLICT (alias) DO NOTHING;

-- Permit statuses and the only transitions allowed between them (the OPEN timeline).
CREATE TABLE gis_domain.permit_statuses (
    code     text PRIMARY KEY,
    name_ko  text NOT NULL,
    name_en  text NOT NULL,
    terminal boolean NOT NULL DEFAULT false,
    active_works boolean NOT NULL DEFAULT false,   -- shown on the public active-works layer
    sort_order smallint NOT NULL
);
INSERT INTO gis_domain.permit_statuses (code, name_ko, name_en, terminal, active_works, sort_order) VALUES
    ('received',  '접수',     'Received',        false, false, 10),
    ('reviewed',  '검토완료', 'Reviewed',        false, false, 20),
    ('approved',  '허가',     'Approved',        false, true,  30),
    ('rejected',  '불허',     'Rejected',        true,  false, 40),
    ('works',     '공사중',   'Works under way', false, true,  50),
    ('completed', '준공',     'Completed',       true,  false, 60);

CREATE TABLE gis_domain.permit_transitions (
    from_status text NOT NULL REFERENCES gis_domain.permit_statuses (code),
    to_status   text NOT NULL REFERENCES gis_domain.permit_statuses (code),
    PRIMARY KEY (from_status, to_status)
);
INSERT INTO gis_domain.permit_transitions VALUES
    ('received', 'reviewed'), ('reviewed', 'approved'), ('reviewed', 'rejected'),
    ('approved', 'works'), ('works', 'completed');

-- Road-works permits: the public part.  Personal data of the applicant is NOT here.
CREATE TABLE gis_domain.permits (
    id              bigserial PRIMARY KEY,
    permit_no       text NOT NULL UNIQUE CHECK (permit_no ~ '^[A-Z0-9][A-Z0-9-]{2,39}$'),
    permit_type     text NOT NULL CHECK (permit_type IN ('excavation', 'occupancy')),
    purpose         text NOT NULL CHECK (length(purpose) BETWEEN 1 AND 500),
    facility_kind   text REFERENCES gis_domain.facility_kinds (code),
    planned_depth_m double precision NOT NULL CHECK (planned_depth_m >= 0 AND planned_depth_m <= 30),
    starts_on       date NOT NULL,
    ends_on         date NOT NULL,
    office          text NOT NULL,
    district_code   text,
    status          text NOT NULL DEFAULT 'received' REFERENCES gis_domain.permit_statuses (code),
    status_at       timestamptz NOT NULL DEFAULT now(),
    created_at      timestamptz NOT NULL DEFAULT now(),
    geom            geometry(MultiPolygon, 4326) NOT NULL CHECK (ST_IsValid(geom) AND NOT ST_IsEmpty(geom)),
    CHECK (ends_on >= starts_on)
);
CREATE INDEX permits_geom_idx ON gis_domain.permits USING gist (geom);
CREATE INDEX permits_status_idx ON gis_domain.permits (status, starts_on);

-- Applicant personal data, one row per permit, in its own table: no public query joins it.
CREATE TABLE gis_domain.permit_applicants (
    permit_id    bigint PRIMARY KEY REFERENCES gis_domain.permits (id) ON DELETE CASCADE,
    name         text NOT NULL,
    organisation text,
    contact      text,
    address      text
);

-- Every status a permit has been in, with who set it and when (append-only).
CREATE TABLE gis_domain.permit_status_history (
    id        bigserial PRIMARY KEY,
    permit_id bigint NOT NULL REFERENCES gis_domain.permits (id) ON DELETE CASCADE,
    status    text NOT NULL REFERENCES gis_domain.permit_statuses (code),
    at        timestamptz NOT NULL DEFAULT now(),
    actor     text NOT NULL,
    office    text NOT NULL,
    note      text CHECK (note IS NULL OR length(note) <= 1000)
);
CREATE INDEX permit_status_history_permit_idx ON gis_domain.permit_status_history (permit_id, at, id);

-- The state machine, enforced in the database: a new history row must follow an allowed
-- transition from the permit's current status (or be the first 'received'), and it moves
-- the permit's current status.  Applications can not bypass it with plain SQL.
CREATE FUNCTION gis_domain.permit_history_check() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    current_status text;
    n_before bigint;
BEGIN
    SELECT p.status INTO current_status FROM gis_domain.permits p WHERE p.id = NEW.permit_id FOR UPDATE;
    SELECT count(*) INTO n_before FROM gis_domain.permit_status_history h WHERE h.permit_id = NEW.permit_id;
    IF n_before = 0 THEN
        IF NEW.status <> 'received' THEN
            RAISE EXCEPTION 'a permit''s history must start with received, not %', NEW.status
                USING ERRCODE = 'check_violation';
        END IF;
    ELSIF NOT EXISTS (SELECT 1 FROM gis_domain.permit_transitions t
                      WHERE t.from_status = current_status AND t.to_status = NEW.status) THEN
        RAISE EXCEPTION 'illegal permit transition % -> %', current_status, NEW.status
            USING ERRCODE = 'check_violation';
    END IF;
    UPDATE gis_domain.permits SET status = NEW.status, status_at = NEW.at WHERE id = NEW.permit_id;
    RETURN NEW;
END $$;
CREATE TRIGGER permit_history_check BEFORE INSERT ON gis_domain.permit_status_history
    FOR EACH ROW EXECUTE FUNCTION gis_domain.permit_history_check();

CREATE FUNCTION gis_domain.permit_history_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND NOT EXISTS (SELECT 1 FROM gis_domain.permits WHERE id = OLD.permit_id) THEN
        RETURN OLD;   -- cascading delete of the whole permit (demo rebuild)
    END IF;
    RAISE EXCEPTION 'gis_domain.permit_status_history is append-only';
END $$;
CREATE TRIGGER permit_history_no_update BEFORE UPDATE OR DELETE ON gis_domain.permit_status_history
    FOR EACH ROW EXECUTE FUNCTION gis_domain.permit_history_immutable();

-- The public layer of active works: permits whose status is flagged active_works, with
-- public columns only (no applicant data can reach it).  Served by the catalog as layer
-- 'active_works' once registered (layers.domains.permits.ensure_active_works_layer).
CREATE VIEW gis_data.active_works AS
SELECT p.id AS fid, p.permit_no, p.permit_type, p.purpose, p.facility_kind,
       p.planned_depth_m, p.starts_on, p.ends_on, p.office, p.district_code,
       p.status, s.name_ko AS status_ko, p.geom
FROM gis_domain.permits p JOIN gis_domain.permit_statuses s ON s.code = p.status
WHERE s.active_works;

-- Any change to permits refreshes the catalog record of the active-works layer (count,
-- extent, a new data version: tile caches keyed on it can never serve stale works).
CREATE FUNCTION gis_domain.active_works_touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
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
CREATE TRIGGER permits_active_works_touch AFTER INSERT OR UPDATE OR DELETE ON gis_domain.permits
    FOR EACH STATEMENT EXECUTE FUNCTION gis_domain.active_works_touch();
