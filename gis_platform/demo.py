"""The demo city, assembled from the feature packages' own demo loaders.

Each module in :data:`DEMO_MODULES` may expose
``load_demo(settings, conninfo, *, scale, only_if_empty, console) -> dict``; they run in
order (boundaries and networks first, then domain data built on them, then the policy maps
that read both).  A module that does not exist is skipped.  Every loader is idempotent with
``only_if_empty=True`` (``make up`` runs it on every start).
"""

from __future__ import annotations

import importlib

DEMO_MODULES = (
    "layers.demo",            # boundaries, roads, underground facilities
    "layers.domains.demo",    # facility/road schemas, permits with status histories
    "policy_maps.demo",       # indicators, hexagon grid, published policy maps
)


def loaders():
    out = []
    for name in DEMO_MODULES:
        try:
            mod = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and name.startswith(exc.name):
                continue
            raise
        fn = getattr(mod, "load_demo", None)
        if fn is not None:
            out.append(fn)
    return out


def load_demo(settings, conninfo: str, *, scale: str = "small", only_if_empty: bool = True,
              console=None) -> dict[str, int]:
    """Run every demo loader; returns the feature/row counts they report."""
    counts: dict[str, int] = {}
    for fn in loaders():
        counts.update(fn(settings, conninfo, scale=scale, only_if_empty=only_if_empty,
                         console=console) or {})
    return counts
