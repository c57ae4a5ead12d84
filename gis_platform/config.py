"""Platform settings.

One :class:`Settings` object is built at the edge (the CLI or ``create_app``) and passed
down explicitly; library modules never instantiate it at import time.  Every field can be
set from the environment with the ``GIS_`` prefix (``GIS_DATABASE_URL``, ``GIS_PORT``...).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """All runtime configuration of the platform."""

    model_config = SettingsConfigDict(env_prefix="GIS_", env_file=".env", extra="ignore")

    # --- database -------------------------------------------------------------------
    database_url: str | None = Field(
        default=None,
        description="PostgreSQL/PostGIS URL. Empty: run the embedded cluster in data_dir.",
    )
    admin_database_url: str | None = Field(
        default=None,
        description="The schema owner's URL, for migrations and backups (default: "
        "database_url; the embedded cluster uses its own owner). The server itself runs as "
        "the least-privilege login of database_url.",
    )
    read_database_url: str | None = Field(
        default=None,
        description="Optional read-only replica URL used for tiles and feature queries.",
    )
    data_dir: Path = Field(default=Path("var"), description="Cluster, rasters, cache, maps.")
    pg_bin_dir: Path | None = Field(default=None, description="PostgreSQL binaries (auto).")
    pg_os_user: str = Field(default="postgres", description="OS user owning the cluster when run as root.")
    service_user: str = Field(
        default="gis-platform", description="Unprivileged OS user the server, ingest and the "
        "other data commands run as when started as root (created when missing).")
    pg_port: int | None = Field(default=None, description="Port of the embedded cluster (auto: a free one).")
    pg_shared_buffers_mb: int | None = Field(
        default=None, ge=16,
        description="shared_buffers of the embedded cluster (auto: a quarter of the memory "
        "available, between 128 MB and 4 GB); applied at each start.")
    pool_min_size: int = 1
    pool_max_size: int = 10
    pool_timeout: float = Field(default=5.0, description="Seconds to wait for a connection before 503.")
    statement_timeout_ms: int = Field(default=30_000, description="Per-statement timeout.")
    anonymous_statement_timeout_ms: int = Field(
        default=5_000, ge=100, description="Statement timeout of expensive queries "
        "(statistics, spatial operators, filters, dig-checks) from callers without a key.")
    pool_heavy_share: float = Field(
        default=0.5, gt=0, le=1, description="Share of the pool that expensive queries may "
        "hold at once; the rest stays free for tiles, pages and the catalog.")
    auto_migrate: bool = True

    # --- HTTP -----------------------------------------------------------------------
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    cors_origins: list[str] = Field(default_factory=list)
    public_url: str | None = Field(default=None, description="External base URL for links.")
    static_vendor_dir: Path | None = Field(
        default=None, description="Vendored front-end assets served under /static/vendor "
        "(default: gis_platform/static/vendor, filled by `make assets`).")

    # --- operations (#8) ------------------------------------------------------------------
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
    graceful_shutdown_s: int = Field(default=20, description="In-flight requests get this long on stop.")

    # --- caches and limits ----------------------------------------------------------
    tile_cache_memory_mb: int = 128
    tile_cache_disk_mb: int = 2048
    tile_cache_control: str = "public, max-age=3600"
    max_upload_mb: int = 512
    ingest_max_feature_vertices: int = Field(
        default=250_000, ge=1000, description="Vertices one ingested feature may have.")
    ingest_max_uncompressed_mb: int = Field(
        default=2048, ge=1, description="What a zipped upload may expand to (checked before "
        "extracting).")
    ingest_max_zip_ratio: float = Field(
        default=250.0, ge=10, description="Largest expansion ratio of one zip member over 1 MB.")
    max_request_body_kb: int = 1024
    features_default_limit: int = 100
    features_max_limit: int = 10_000

    # --- vector tiles (tile_server) ------------------------------------------------------
    tile_extent: int = 4096
    tile_buffer: int = 64
    tile_max_features: int = Field(default=20_000, description="Per layer per tile.")
    tile_overview_below_zoom: int = Field(default=12, description="Below it: few attributes, simplified.")
    tile_overview_attributes: int = 3
    tile_detail_from_zoom: int = Field(
        default=15, description="From this zoom tiles carry every attribute; from the overview "
        "band up to it, the layer's mid attributes (default_style.mid_attributes).")
    tile_mid_attributes: int = Field(default=6, description="Attributes of mid-band tiles "
                                     "when the layer's style names none.")
    tile_min_feature_px: float = 1.0
    tile_simplify_px: float = 0.5
    tile_max_layers: int = 10
    tile_raster_threads: int = 4

    # --- features and exports (layers.features) -------------------------------------------
    features_extra_srids: list[int] = Field(default_factory=list)
    features_precision_degrees: int = 7
    features_precision_metres: int = 3
    features_max_distance_m: float = 100_000
    features_export_batch: int = 5_000
    features_export_timeout_ms: int = 600_000
    features_export_max_features: int | None = None
    features_export_tmp_dir: Path | None = None
    features_export_fgb_index: bool = False
    features_fast_route: bool = Field(
        default=True, description="Serve GET /collections/{id}/items through a thin route "
        "in front of FastAPI's (same body, same responses; less per-request overhead).")

    # --- policy maps (#6) ---------------------------------------------------------------
    maps_png_cache_mb: int = Field(default=256, ge=1, description="Disk for rendered map PNGs; "
                                   "least recently used go first.")
    maps_default_lang: Literal["ko", "en"] = Field(
        default="ko", description="UI language of map pages without ?lang= or Accept-Language.")

    # --- write access (until the security issue adds roles) -------------------------
    allow_anonymous_writes: bool = Field(
        default=False,
        description="Allow catalog writes and uploads without credentials (development only).",
    )

    # domains (#5): dig-safety check, cross-sections, road-works permits ------------------
    domains_facilities_layer: str = Field(default="underground_facilities",
                                          description="Catalog layer the dig-safety check reads.")
    domains_roads_layer: str = Field(default="roads", description="Catalog layer of road centrelines.")
    domains_digcheck_buffer_m: float = Field(default=3.0, description="Default search distance (m).")
    domains_digcheck_max_buffer_m: float = 50.0
    domains_digcheck_max_area_m2: float = Field(default=250_000.0,
                                                description="Largest excavation area accepted (m²).")
    domains_digcheck_max_results: int = 5_000
    domains_cross_section_max_length_m: float = 3_000.0

    # security (#7) -----------------------------------------------------------------------
    rate_limit_per_ip: float = Field(
        default=100, ge=0, description="Requests/s per client IP for callers without a key (a "
        "map view loads a few dozen tiles at once: the burst covers it); 0 = off.")
    rate_limit_per_key: float = Field(default=0, description="Requests/s per API key; 0 = off.")
    rate_limit_burst_seconds: float = Field(default=5.0, description="Bucket size in seconds of the rate.")
    audit_levels: list[str] = Field(default_factory=lambda: ["internal", "restricted"],
                                    description="Access levels whose every read decision is "
                                    "audited (every non-public level by default).")
    audit_flush_seconds: float = Field(default=1.0, description="Audit rows are COPYed this often.")
    audit_batch_rows: int = Field(default=5_000, description="...or as soon as this many are queued.")
    audit_max_buffer: int = Field(default=100_000, description="Queued rows before requests wait.")
    embed_paths: list[str] = Field(default_factory=lambda: ["/viewer", "/maps/"],
                                   description="HTML pages other sites may frame (map pages).")
    frame_ancestors: str = Field(default="*", description="CSP frame-ancestors of embeddable pages.")

    # tiles (#4): overviews and the cache-hit fast path -----------------------------------
    tile_overview_max_zoom: int = Field(
        default=12, description="Zooms up to this one are overview zooms (few attributes, "
        "sub-pixel features dropped); raises tile_overview_below_zoom.")
    tile_overview_zooms: list[int] = Field(
        default_factory=lambda: [8, 10, 11, 12, 13, 14, 16],
        description="Zoom levels with a pre-generalised overview table (JSON list); a tile reads "
        "the smallest level >= its zoom, the base table above the last one; levels >= 14 are "
        "full-resolution EPSG:3857 copies.")
    tile_overview_min_features: int = Field(
        default=50_000, description="Layers with at least this many features get overviews.")
    tile_overview_auto_build: bool = Field(
        default=True, description="Workers build missing overviews in the background.")
    tile_overview_build_timeout_s: int = Field(default=1800, description="Per overview level.")
    tile_pool_min_size: int = Field(
        default=4, description="Tile-read connections each worker opens at startup.")
    tile_parallel_workers: int = Field(
        default=0, ge=0, le=8,
        description="PostgreSQL parallel workers per tile statement "
        "(max_parallel_workers_per_gather on tile connections); 0: none.")
    tile_fast_path: bool = Field(
        default=True, description="Serve tile GETs through the thin ASGI route (no FastAPI DI).")

    @field_validator("cors_origins", "audit_levels", "embed_paths", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip().startswith("["):
            return [v.strip() for v in value.split(",") if v.strip()]
        return value

    @property
    def embedded(self) -> bool:
        """True when the platform runs its own PostgreSQL cluster."""
        return not self.database_url

    def resolved_data_dir(self) -> Path:
        """The data directory as an absolute path (created on demand by users)."""
        return self.data_dir.expanduser().resolve()
