"""The demo city, assembled from the features' own demo loaders (in the order of
:data:`gis_platform.composition.FEATURES`: boundaries and networks first, then the domain
data built on them, then the policy maps that read both).  Every loader is idempotent with
``only_if_empty=True`` (``make up`` runs it on every start).
"""

from __future__ import annotations

from gis_platform.composition import FEATURES


def load_demo(settings, conninfo: str, *, scale: str = "small", only_if_empty: bool = True,
              console=None) -> dict[str, int]:
    """Run every demo loader; returns the feature/row counts they report."""
    counts: dict[str, int] = {}
    for feature in FEATURES:
        if feature.demo is not None:
            counts.update(feature.demo(settings, conninfo, scale=scale,
                                       only_if_empty=only_if_empty, console=console) or {})
    return counts
