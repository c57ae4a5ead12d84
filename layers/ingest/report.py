"""What an ingest did, as the CLI, the upload route and the tests see it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class IngestReport:
    """What an ingest did: counts, timings and notes, as shown by the CLI and the API."""

    layer_id: str
    mode: str
    kind: str = "vector"
    format: str | None = None
    features_read: int = 0
    features_written: int = 0
    repaired: int = 0
    dropped_empty: int = 0
    dropped_no_coordinates: int = 0
    dropped_other: int = 0
    geometry_type: str | None = None
    source_crs: str | None = None
    storage_srid: int | None = None
    encoding: str | None = None
    data_version: int | None = None
    feature_count: int | None = None
    seconds: float = 0.0
    features_per_second: float = 0.0
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
