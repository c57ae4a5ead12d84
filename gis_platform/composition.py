"""The one list of the platform's features, in order.

The server (:mod:`gis_platform.app`), the command line (:mod:`gis_platform.cli`) and the
demo city (:mod:`gis_platform.demo`) all read :data:`FEATURES`: routes are mounted,
lifespans entered, commands attached and demo loaders run in this order - boundaries and
networks before the domain data built on them, before the maps that read both.  To add a
feature package, give it a ``feature.py`` with a :class:`~gis_platform.feature.Feature`
and add it here.
"""

from __future__ import annotations

from domains.feature import FEATURE as DOMAINS
from features.feature import FEATURE as FEATURES_API
from gis_platform.feature import Feature
from indicators.feature import FEATURE as INDICATORS
from layers.feature import FEATURE as LAYERS
from policy_maps.feature import FEATURE as POLICY_MAPS
from tile_server.feature import FEATURE as TILES

FEATURES: tuple[Feature, ...] = (LAYERS, FEATURES_API, DOMAINS, INDICATORS, TILES, POLICY_MAPS)
