"""Platform settings, grouped by concern.

One :class:`Settings` object is built at the edge (the CLI or ``create_app``) and passed
down explicitly; library modules never instantiate it at import time.  Each concern is a
typed group read where it is used - ``settings.database``, ``settings.http``,
``settings.security``, ``settings.ingest``, ``settings.tiles``, ``settings.features``,
``settings.maps``, ``settings.domains`` - and every field is set from the environment by
its flat name with the ``GIS_`` prefix, as always: ``GIS_DATABASE_URL`` is
``settings.database.url``, ``GIS_TILE_EXTENT`` is ``settings.tiles.extent``, ``GIS_PORT``
is ``settings.http.port`` (:func:`env_names` lists them all).  ``Settings(tile_extent=512)``
takes the same flat names, or a group (``Settings(tiles=TileSettings(...))``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _split(value: object) -> object:
    """``a,b`` (or a JSON list) from the environment -> a list."""
    if isinstance(value, str) and not value.strip().startswith("["):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, str):
        import json

        return json.loads(value)
    return value


class _Group(BaseModel):
    """A group of settings; ``ENV`` maps a field to its flat name where that is not
    ``PREFIX + field``."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)
    PREFIX: ClassVar[str] = ""
    ENV: ClassVar[dict[str, str]] = {}


class DatabaseSettings(_Group):
    """The database, the embedded cluster and the connection pools."""

    ENV: ClassVar[dict[str, str]] = {"url": "database_url", "admin_url": "admin_database_url",
                                     "read_url": "read_database_url",
                                     "session_url": "session_database_url"}
    url: str | None = Field(
        default=None, description="PostGIS URL of the server's least-privilege login. Empty: "
        "run the embedded cluster in data_dir.")
    admin_url: str | None = Field(
        default=None, description="The schema owner's URL, for migrations and backups "
        "(default: url; the embedded cluster uses its own owner).")
    read_url: str | None = Field(default=None, description="Optional read replica for tiles "
                                 "and feature queries.")
    session_url: str | None = Field(
        default=None, description="A session-level connection to PostgreSQL (direct, or a "
        "pgbouncer pool in session mode) for what needs one: LISTEN, leader election, overview "
        "builds. Default: url.")
    transaction_pooler: bool = Field(
        default=False, description="url (and read_url) go through a pooler in transaction mode "
        "(pgbouncer pool_mode=transaction): no startup options and no prepared statements on "
        "pooled connections; statement timeouts come from the role "
        "(ALTER ROLE gis_platform_app SET statement_timeout ...).")
    replica_max_wait_ms: float = Field(
        default=200.0, ge=0, description="A read waits this long for the replica to replay "
        "what the worker has seen committed (a re-ingest, an edit), then goes to the primary.")
    replica_retry_s: float = Field(default=5.0, gt=0, description="A failed replica is left "
                                   "out this long (its reads go to the primary), then tried again.")
    pg_bin_dir: Path | None = Field(default=None, description="PostgreSQL binaries (auto).")
    pg_os_user: str = Field(default="postgres", description="OS user owning the cluster when "
                            "run as root.")
    pg_port: int | None = Field(default=None, description="Port of the embedded cluster "
                                "(auto: a free one).")
    pg_shared_buffers_mb: int | None = Field(
        default=None, ge=16, description="shared_buffers of the embedded cluster (auto: a "
        "quarter of the memory available, between 128 MB and 4 GB); applied at each start.")
    pool_min_size: int = 1
    pool_max_size: int = 10
    pool_timeout: float = Field(default=5.0, description="Seconds to wait for a connection "
                                "before 503.")
    statement_timeout_ms: int = Field(default=30_000, description="Per-statement timeout.")
    anonymous_statement_timeout_ms: int = Field(
        default=5_000, ge=100, description="Statement timeout of expensive queries "
        "(statistics, spatial operators, filters, dig-checks) from callers without a key.")
    pool_heavy_share: float = Field(
        default=0.5, gt=0, le=1, description="Share of the pool that expensive queries may "
        "hold at once; the rest stays free for tiles, pages and the catalog.")
    auto_migrate: bool = True


class HttpSettings(_Group):
    """Serving: address, workers, logs, headers, limits, metrics."""

    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    cors_origins: list[str] = Field(default_factory=list)
    public_url: str | None = Field(default=None, description="External base URL for links.")
    static_vendor_dir: Path | None = Field(
        default=None, description="Vendored front-end assets served under /static/vendor "
        "(default: gis_platform/static/vendor, filled by `make assets`).")
    request_timeout_s: float = Field(
        default=60.0, description="A request that has not started its response by then gets "
        "503 (0: no limit). Streamed exports, once started, are not cut off.")
    metrics_enabled: bool = Field(default=True, description="Serve Prometheus /metrics.")
    metrics_public: bool = Field(
        default=False, description="Serve /metrics to anyone; off: admin API keys only (give "
        "Prometheus one as its bearer token).")
    opentelemetry: bool = Field(
        default=False, description="FastAPI's native OpenTelemetry spans, metrics and logs, "
        "sent to the globally configured OTel providers (off: /metrics and the JSON logs).")
    graceful_shutdown_s: int = Field(default=20, description="In-flight requests get this "
                                     "long on stop.")
    max_request_body_kb: int = 1024
    embed_paths: list[str] = Field(default_factory=lambda: ["/viewer", "/maps/"],
                                   description="HTML pages other sites may frame (map pages).")
    frame_ancestors: str = Field(default="*", description="CSP frame-ancestors of embeddable "
                                 "pages.")

    _lists = field_validator("cors_origins", "embed_paths", mode="before")(_split)


class SecuritySettings(_Group):
    """Who may do what, and what is on the record."""

    service_user: str = Field(
        default="gis-platform", description="Unprivileged OS user the server, ingest and the "
        "other data commands run as when started as root (created when missing).")
    allow_anonymous_writes: bool = Field(
        default=False, description="Allow catalog writes and uploads without credentials "
        "(development only).")
    rate_limit_per_ip: float = Field(
        default=100, ge=0, description="Requests/s per client IP for callers without a key (a "
        "map view loads a few dozen tiles at once: the burst covers it); 0 = off.")
    rate_limit_per_key: float = Field(default=0, description="Requests/s per API key; 0 = off.")
    rate_limit_burst_seconds: float = Field(default=5.0, description="Bucket size in seconds "
                                            "of the rate.")
    audit_levels: list[str] = Field(default_factory=lambda: ["internal", "restricted"],
                                    description="Access levels whose every read decision is "
                                    "audited (every non-public level by default).")
    audit_flush_seconds: float = Field(default=1.0, description="Audit rows are COPYed this often.")
    audit_batch_rows: int = Field(default=5_000, description="...or as soon as this many are queued.")
    audit_max_buffer: int = Field(default=100_000, description="Queued rows before requests wait.")

    _lists = field_validator("audit_levels", mode="before")(_split)


class IngestSettings(_Group):
    """What an upload or an ingested file may be."""

    PREFIX: ClassVar[str] = "ingest_"
    ENV: ClassVar[dict[str, str]] = {"max_upload_mb": "max_upload_mb"}
    max_upload_mb: int = 512
    max_feature_vertices: int = Field(default=250_000, ge=1000,
                                      description="Vertices one ingested feature may have.")
    max_uncompressed_mb: int = Field(default=2048, ge=1, description="What a zipped upload may "
                                     "expand to (checked before extracting).")
    max_zip_ratio: float = Field(default=250.0, ge=10, description="Largest expansion ratio of "
                                 "one zip member over 1 MB.")


class TileSettings(_Group):
    """Vector and raster tiles, overviews and the tile cache (``GIS_TILE_*``)."""

    PREFIX: ClassVar[str] = "tile_"
    cache_memory_mb: int = 128
    cache_disk_mb: int = 2048
    cache_control: str = Field(
        default="public, max-age=60, s-maxage=1", description="Cache-Control of public tiles: "
        "browsers keep them a minute; a shared cache (the nginx edge, a CDN) a second, then "
        "revalidates with the ETag (a 304 unless the tile changed), so no edge serves a tile "
        "of a layer that changed more than a second ago.")
    extent: int = 4096
    buffer: int = 64
    max_features: int = Field(default=20_000, description="Per layer per tile.")
    overview_max_features: int = Field(
        default=4096, ge=1, description="Per layer per tile at overview zooms (up to "
        "overview_max_zoom): the largest features first, spread over the tile (as "
        "tippecanoe thins dense layers for low zooms); a 256-pixel tile cannot show more.")
    overview_below_zoom: int = Field(default=12, description="Below it: few attributes, "
                                     "simplified.")
    overview_attributes: int = 3
    detail_from_zoom: int = Field(
        default=15, description="From this zoom tiles carry every attribute; from the overview "
        "band up to it, the layer's mid attributes (default_style.mid_attributes).")
    mid_attributes: int = Field(default=6, description="Attributes of mid-band tiles when the "
                                "layer's style names none.")
    min_feature_px: float = 1.0
    simplify_px: float = 0.5
    max_layers: int = 10
    raster_threads: int = 4
    overview_max_zoom: int = Field(
        default=12, description="Zooms up to this one are overview zooms (few attributes, "
        "sub-pixel features dropped); raises overview_below_zoom.")
    overview_zooms: list[int] = Field(
        default_factory=lambda: [8, 10, 11, 12, 13, 14, 16],
        description="Zoom levels with a pre-generalised overview table (JSON list); a tile reads "
        "the smallest level >= its zoom, the base table above the last one; levels >= 14 are "
        "full-resolution EPSG:3857 copies.")
    overview_min_features: int = Field(default=50_000, description="Layers with at least this "
                                       "many features get overviews.")
    overview_auto_build: bool = Field(default=True, description="Workers build missing overviews "
                                      "in the background.")
    overview_build_timeout_s: int = Field(default=1800, description="Per overview level.")
    overview_patch_quiet_s: float = Field(
        default=1.0, ge=0, description="Overviews are updated in place where rows changed (edits, "
        "a published relation's statements: up to 64 located changes) once the rows have not "
        "changed for this long...")
    overview_rebuild_quiet_s: float = Field(
        default=10.0, ge=0, description="...and rebuilt (more changes, or changes of unknown "
        "extent) once the rows have not changed for this long...")
    overview_rebuild_max_stale_s: float = Field(
        default=120.0, ge=0, description="...or at the latest this long after the first change "
        "they miss (tiles over changed areas read the relation itself meanwhile).")
    live_cache_control: str = Field(
        default="no-cache", description="Cache-Control of tiles of layers whose rows change in "
        "place (published relations): clients revalidate with the ETag, which changes only for "
        "tiles over a change.")
    pool_min_size: int = Field(default=4, description="Tile-read connections each worker opens "
                               "at startup.")
    parallel_workers: int = Field(
        default=0, ge=0, le=8, description="PostgreSQL parallel workers per tile statement "
        "(max_parallel_workers_per_gather on tile connections); 0: none.")
    fast_path: bool = Field(default=True, description="Serve tile GETs through the thin ASGI "
                            "route (no FastAPI DI).")

    _lists = field_validator("overview_zooms", mode="before")(_split)


class PublishSettings(_Group):
    """Relations published in place from PostGIS (``GIS_PUBLISH_*``)."""

    PREFIX: ClassVar[str] = "publish_"
    schemas: list[str] = Field(
        default_factory=list, description="Schemas to watch: new spatial tables, views and "
        "functions in them are published as they appear, as 'internal' layers (comma list).")
    discover_seconds: float = Field(default=30.0, ge=1, description="How often the watched "
                                    "schemas are looked at.")
    poll_seconds: float = Field(
        default=5.0, ge=0.5, description="How often relations without a change trigger are "
        "checked for changes (their maximum staleness, plus about a second for PostgreSQL's "
        "statistics).")
    max_changes: int = Field(default=500, ge=10, description="Change-log rows a layer keeps; "
                             "beyond it the log is folded into a new data version.")

    _lists = field_validator("schemas", mode="before")(_split)


class FeatureSettings(_Group):
    """OGC API Features, spatial operators and exports (``GIS_FEATURES_*``)."""

    PREFIX: ClassVar[str] = "features_"
    default_limit: int = 100
    max_limit: int = 10_000
    extra_srids: list[int] = Field(default_factory=list)
    precision_degrees: int = 7
    precision_metres: int = 3
    max_distance_m: float = 100_000
    export_batch: int = 5_000
    export_timeout_ms: int = 600_000
    export_max_features: int | None = None
    export_tmp_dir: Path | None = None
    export_fgb_index: bool = False
    fast_route: bool = Field(
        default=True, description="Serve GET /collections/{id}/items through a thin route "
        "in front of FastAPI's (same body, same responses; less per-request overhead).")
    edit_require_if_match: bool = Field(
        default=True, description="PUT, PATCH and DELETE of a feature need If-Match (428 "
        "without). false: a write without it replaces whatever is there (last write wins; the "
        "version it replaced stays in the history) - for clients that send no If-Match, such "
        "as QGIS's OAPIF provider.")

    _lists = field_validator("extra_srids", mode="before")(_split)


class MapSettings(_Group):
    """Policy maps (``GIS_MAPS_*``)."""

    PREFIX: ClassVar[str] = "maps_"
    png_cache_mb: int = Field(default=256, ge=1, description="Disk for rendered map PNGs; "
                              "least recently used go first.")
    default_lang: Literal["ko", "en"] = Field(
        default="ko", description="UI language of map pages without ?lang= or Accept-Language.")


class DomainSettings(_Group):
    """Facilities, roads, the dig-safety check and cross-sections (``GIS_DOMAINS_*``)."""

    PREFIX: ClassVar[str] = "domains_"
    facilities_layer: str = Field(default="underground_facilities",
                                  description="Catalog layer the dig-safety check reads.")
    roads_layer: str = Field(default="roads", description="Catalog layer of road centrelines.")
    digcheck_buffer_m: float = Field(default=3.0, description="Default search distance (m).")
    digcheck_max_buffer_m: float = 50.0
    digcheck_max_area_m2: float = Field(default=250_000.0, description="Largest excavation area "
                                        "accepted (m²).")
    digcheck_max_results: int = 5_000
    cross_section_max_length_m: float = 3_000.0


GROUPS: dict[str, type[_Group]] = {
    "database": DatabaseSettings, "http": HttpSettings, "security": SecuritySettings,
    "ingest": IngestSettings, "tiles": TileSettings, "features": FeatureSettings,
    "maps": MapSettings, "domains": DomainSettings, "publish": PublishSettings,
}


def env_names() -> dict[str, tuple[str, str]]:
    """Flat name (``GIS_`` + upper case in the environment) -> (group, field)."""
    out = {}
    for group, model in GROUPS.items():
        for name in model.model_fields:
            out[model.ENV.get(name, model.PREFIX + name)] = (group, name)
    return out


_FLAT = env_names()

# Reads GIS_* from the environment and .env by their flat names, untyped: the groups type them.
_EnvReader = create_model(
    "_EnvReader", __base__=BaseSettings,
    __config__=None,
    data_dir=(Any, None), **{flat: (Any, None) for flat in _FLAT})
_EnvReader.model_config = SettingsConfigDict(env_prefix="GIS_", env_file=".env", extra="ignore")


class Settings(BaseModel):
    """All runtime configuration of the platform (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    data_dir: Path = Field(default=Path("var"), description="Cluster, rasters, cache, maps.")
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    security: SecuritySettings = Field(default_factory=SecuritySettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    tiles: TileSettings = Field(default_factory=TileSettings)
    features: FeatureSettings = Field(default_factory=FeatureSettings)
    maps: MapSettings = Field(default_factory=MapSettings)
    domains: DomainSettings = Field(default_factory=DomainSettings)
    publish: PublishSettings = Field(default_factory=PublishSettings)

    def __init__(self, _env_file: str | Path | None = ".env", **given: Any) -> None:
        """Defaults, then the environment (and ``_env_file``), then the flat names and the
        groups given here."""
        read = _EnvReader(_env_file=_env_file).model_dump()
        groups: dict[str, dict[str, Any]] = {g: {} for g in GROUPS}
        top: dict[str, Any] = {}
        for flat, value in read.items():
            if value is None:
                continue
            if flat == "data_dir":
                top["data_dir"] = value
            else:
                group, field = _FLAT[flat]
                groups[group][field] = value
        for key, value in given.items():
            if key in GROUPS:
                given_group = value.model_dump(exclude_unset=True) if isinstance(value, BaseModel) \
                    else dict(value)
                groups[key].update(given_group)
            elif key in _FLAT:
                group, field = _FLAT[key]
                groups[group][field] = value
            elif key == "data_dir":
                top["data_dir"] = value
            else:
                raise TypeError(f"Unknown setting {key!r}; see gis_platform.config.env_names().")
        super().__init__(**top, **{g: GROUPS[g](**v) for g, v in groups.items()})

    @property
    def embedded(self) -> bool:
        """True when the platform runs its own PostgreSQL cluster."""
        return not self.database.url

    def resolved_data_dir(self) -> Path:
        """The data directory as an absolute path (created on demand by users)."""
        return self.data_dir.expanduser().resolve()

    def with_(self, **flat: Any) -> Settings:
        """A copy with some settings changed (flat names, as in the environment)."""
        out = self.model_copy(deep=True)
        for key, value in flat.items():
            if key == "data_dir":
                out.data_dir = value
            else:
                group, field = _FLAT[key]
                setattr(getattr(out, group), field, value)
        return out
