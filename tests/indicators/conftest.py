"""The indicator tests share the policy-map demo world (tests/maps/conftest.py)."""

from tests.maps.conftest import map_world  # noqa: F401  (a fixture, re-exported)
