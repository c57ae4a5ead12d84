"""The policy-maps feature: map specs, classification, rendering, the public gallery."""

from __future__ import annotations

from gis_platform.feature import Feature
from policy_maps import api, cli, demo

FEATURE = Feature("policy maps", routers=(api.router,), cli=cli.register, demo=demo.load_demo)
