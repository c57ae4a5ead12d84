"""The change log of a layer: which rows changed where, since the layer's base version.

A layer's *base version* (``gis_meta.layers.data_version``) changes when the layer changes
as a whole: an ingest, a metadata change that alters tiles.  Between two base versions, the
rows change under edits (#17) and, for a published relation (#16), other systems'
statements; each leaves one row in ``gis_meta.layer_changes`` with
the lon/lat extent of the rows it touched (NULL: anywhere), a version from the catalog's
sequence, and its transaction id.

Two things are read from the log:

* :meth:`ChangeLog.signature` over a box (a tile): the number and the XOR of the versions
  of the changes that touch it.  The log only grows between base versions, so the
  signature of a box changes exactly when a change that touches it arrives - in any
  commit order - and a cached tile keyed on it is never served stale, while tiles outside
  every change keep their key.
* :meth:`ChangeLog.unseen` for an overview built in a snapshot: whether a change that
  touches a box is not in that snapshot (the overview is then stale there, and the tile
  reads the relation itself).

A long log is folded (:func:`fold_cells`): its oldest changes become one row per cell of a
coarse grid, so the log stays short without a new base version.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_INF = float("inf")


@dataclass(frozen=True)
class Snapshot:
    """A PostgreSQL ``pg_snapshot`` (``xmin:xmax:xip,...``): which transactions it sees."""

    xmin: int
    xmax: int
    xip: frozenset[int]

    @classmethod
    def parse(cls, text: str | None) -> Snapshot | None:
        if not text:
            return None
        xmin, xmax, xip = str(text).split(":")
        return cls(int(xmin), int(xmax), frozenset(int(x) for x in xip.split(",") if x))

    def sees(self, xid: int) -> bool:
        return xid < self.xmin or (xid < self.xmax and xid not in self.xip)


@dataclass(frozen=True)
class Change:
    version: int
    xid: int
    box: tuple[float, float, float, float] | None      # lon/lat; None: anywhere
    at: float = 0.0                                    # when (Unix time)


class ChangeLog:
    """The changes of one layer since its base version (see the module docstring)."""

    __slots__ = ("_box", "_ver", "_xid", "changes", "signature_all")

    def __init__(self, changes: list[Change]) -> None:
        self.changes = sorted(changes, key=lambda c: c.version)
        n = len(self.changes)
        self._box = np.empty((n, 4))
        for i, c in enumerate(self.changes):
            self._box[i] = c.box if c.box is not None else (-_INF, -_INF, _INF, _INF)
        self._ver = np.array([c.version for c in self.changes], dtype=np.int64)
        self._xid = np.array([c.xid for c in self.changes], dtype=np.int64)
        self.signature_all = _sig(self._ver)

    def __len__(self) -> int:
        return len(self.changes)

    def _touching(self, box: tuple[float, float, float, float] | None) -> np.ndarray:
        if box is None:
            return np.ones(len(self.changes), dtype=bool)
        b = self._box
        return (b[:, 0] <= box[2]) & (b[:, 2] >= box[0]) & (b[:, 1] <= box[3]) & (b[:, 3] >= box[1])

    def signature(self, box: tuple[float, float, float, float] | None = None) -> str:
        """``<count>x<xor of versions>`` of the changes touching ``box`` ('' if none)."""
        if not self.changes:
            return ""
        return _sig(self._ver[self._touching(box)])

    def unseen(self, snapshot: Snapshot | None, box: tuple[float, float, float, float] | None) -> bool:
        """Whether a change touching ``box`` is not visible in ``snapshot``."""
        if not self.changes:
            return False
        if snapshot is None:
            return True
        idx = np.nonzero(self._touching(box))[0]
        return any(not snapshot.sees(int(self._xid[i])) for i in idx)

    def unseen_by(self, snapshots: list[Snapshot | None]) -> list[Change]:
        """The changes some of ``snapshots`` do not see (an overview's levels)."""
        return [c for c in self.changes if any(s is None or not s.sees(c.xid) for s in snapshots)]

    def extent(self) -> tuple[float, float, float, float] | None:
        """The union of the changed extents (None: nothing changed, or somewhere unknown)."""
        if not self.changes or any(c.box is None for c in self.changes):
            return None
        b = self._box
        return (float(b[:, 0].min()), float(b[:, 1].min()), float(b[:, 2].max()), float(b[:, 3].max()))


def _sig(versions: np.ndarray) -> str:
    if not len(versions):
        return ""
    return f"{len(versions)}x{int(np.bitwise_xor.reduce(versions)):x}"


EMPTY = ChangeLog([])


def from_rows(rows: list[tuple]) -> dict[str, ChangeLog]:
    """``(layer_id, version, xid, extent, at)`` rows -> a log per layer."""
    by_layer: dict[str, list[Change]] = {}
    for layer_id, version, xid, extent, at in rows:
        box = tuple(float(v) for v in extent) if extent is not None else None
        by_layer.setdefault(layer_id, []).append(Change(int(version), int(xid), box, float(at)))
    return {k: ChangeLog(v) for k, v in by_layer.items()}


#: The NOTIFY payload (on ``gis_catalog``) of the change trigger: rows changed, not the catalog.
CHANGES = "changes"

SELECT_CHANGES = ("SELECT layer_id, version, xid::text::bigint, extent, extract(epoch FROM at) "
                  "FROM gis_meta.layer_changes ORDER BY id")

#: The changes a previous read (its ``pg_snapshot``, twice) did not see: committed since.
SELECT_NEW_CHANGES = (
    "SELECT layer_id, version, xid::text::bigint, extent, extract(epoch FROM at) "
    "FROM gis_meta.layer_changes WHERE xid >= pg_snapshot_xmin(%s::pg_snapshot) "
    "AND NOT pg_visible_in_snapshot(xid, %s::pg_snapshot) ORDER BY id")


def merge(logs: dict[str, ChangeLog], new: dict[str, ChangeLog]) -> dict[str, ChangeLog]:
    """``logs`` with the changes of ``new`` added (each layer's log rebuilt once)."""
    out = dict(logs)
    for layer_id, log in new.items():
        have = out.get(layer_id)
        if have is None:
            out[layer_id] = log
        else:
            seen = {c.version for c in have.changes}
            out[layer_id] = ChangeLog([*have.changes, *(c for c in log.changes if c.version not in seen)])
    return out


# --- folding --------------------------------------------------------------------------------
#: The grid old changes are folded into: WebMercatorQuad tiles of this zoom (~2.4 km).
FOLD_ZOOM = 14


def fold_cells(rows: list[tuple], zoom: int = FOLD_ZOOM) -> dict[tuple[int, int] | None, tuple[int, float]]:
    """Old changes ``(xid, extent, at)`` folded into cells of the fold grid: ``{(x, y):
    (largest xid, latest time)}`` for every cell an extent touches (``None``: a change of
    unknown extent, which touches every tile).

    A folded log keeps one row per cell - the cell's bounds, a fresh version - in place of the
    changes it replaces.  A tile any of them touched is touched by its cell's row too, so its
    signature changes again (one more render) and never returns to a value it had before;
    tiles away from every change keep theirs: folding does not make a city-wide map cold.
    ``zoom``: of the grid's cells (:data:`FOLD_ZOOM`; coarser when the changes are spread
    over more cells than the log may keep)."""
    n = 2 ** zoom
    out: dict[tuple[int, int] | None, tuple[int, float]] = {}

    def add(key, xid: int, at: float) -> None:
        have = out.get(key)
        out[key] = (max(xid, have[0]), max(at, have[1])) if have else (xid, at)

    for xid, extent, at in rows:
        if extent is None:
            add(None, int(xid), float(at))
            continue
        lon0, lat0, lon1, lat1 = (float(v) for v in extent)
        x0, x1 = _tile_x(lon0, n), _tile_x(lon1, n)
        y0, y1 = _tile_y(lat1, n), _tile_y(lat0, n)          # rows count down from the north
        if (x1 - x0 + 1) * (y1 - y0 + 1) > 4096:              # a change over a whole region
            add(None, int(xid), float(at))
            continue
        for x in range(x0, x1 + 1):
            for y in range(y0, y1 + 1):
                add((x, y), int(xid), float(at))
    return out


def cell_extent(cell: tuple[int, int], zoom: int = FOLD_ZOOM) -> list[float]:
    """The lon/lat bounds of a fold-grid cell."""
    import math

    n = 2 ** zoom
    x, y = cell

    def lat(row: int) -> float:
        return math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * row / n))))

    return [x / n * 360.0 - 180.0, lat(y + 1), (x + 1) / n * 360.0 - 180.0, lat(y)]


def _tile_x(lon: float, n: int) -> int:
    return min(n - 1, max(0, int((lon + 180.0) / 360.0 * n)))


def _tile_y(lat: float, n: int) -> int:
    import math

    lat = max(-85.0511, min(85.0511, lat))
    r = math.radians(lat)
    return min(n - 1, max(0, int((1 - math.asinh(math.tan(r)) / math.pi) / 2 * n)))
