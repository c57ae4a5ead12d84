"""Unit tests: pure logic (composers, translators, parsers, decisions), no database, no
server - the whole folder runs in seconds (``pytest tests/unit``)."""

from __future__ import annotations

import pytest

from layers.catalog import Attribute, Layer


@pytest.fixture
def mains() -> Layer:
    """A catalog record of a restricted line layer with typed attributes (never stored)."""
    return Layer(id="gas_mains", title="Gas mains", kind="vector", table_name="gas_mains",
                 access_level="restricted", geometry_type="LineString", time_column="installed",
                 schema=[Attribute(name="owner", type="text"), Attribute(name="kind", type="text"),
                         Attribute(name="depth_m", type="double precision"),
                         Attribute(name="diameter_mm", type="bigint"),
                         Attribute(name="installed", type="date"),
                         Attribute(name="active", type="boolean")])
