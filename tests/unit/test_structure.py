"""The structure the codebase promises (ARCHITECTURE.md), checked over the source: one place
opens database connections, settings are read as typed groups, one Jinja environment and
one templates folder, one feature list, our own CQL2 grammar."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("gis_platform", "layers", "features", "domains", "indicators", "tile_server",
            "policy_maps")


def sources():
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            yield path.relative_to(ROOT).as_posix(), path.read_text(encoding="utf-8")


def calls(text: str) -> list[str]:
    """Dotted names of everything called in a module."""
    out = []
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Call):
            out.append(ast.unparse(node.func))
    return out


def test_only_the_database_layer_opens_connections():
    opening = re.compile(r"(^|\.)(connect|AsyncConnectionPool|ConnectionPool)$")
    offenders = []
    for name, text in sources():
        if name.startswith("gis_platform/db/"):
            continue
        for call in calls(text):
            if call.startswith(("psycopg", "psycopg_pool")) and opening.search(call):
                offenders.append(f"{name}: {call}")
            if call in ("AsyncConnectionPool", "ConnectionPool", "AsyncConnection.connect"):
                offenders.append(f"{name}: {call}")
    assert offenders == []


def test_settings_are_read_as_typed_groups_never_by_name():
    offenders = [name for name, text in sources() if re.search(r"getattr\(\s*\w*settings", text)]
    assert offenders == []


def test_one_jinja_environment_and_one_templates_folder():
    envs = [name for name, text in sources() if "Environment(" in text and "jinja2" in text]
    assert envs == ["gis_platform/web.py"]
    pages = sorted(p.relative_to(ROOT).as_posix() for pkg in PACKAGES
                   for p in (ROOT / pkg).rglob("*.html"))
    assert pages and all(p.startswith("gis_platform/templates/") for p in pages), pages


def test_features_are_wired_from_one_list_not_by_name():
    offenders = [name for name, text in sources()
                 if "import_module(" in text or "__import__(" in text]
    assert offenders == []
    composition = (ROOT / "gis_platform" / "composition.py").read_text()
    for pkg in PACKAGES[1:]:
        assert f"from {pkg}.feature import FEATURE" in composition, pkg


def test_the_cql2_grammar_is_ours_and_not_patched_at_runtime():
    cql = (ROOT / "features" / "cql.py").read_text()
    assert "grammar.lark" not in cql and "read_text" in cql and "cql2.lark" in cql
    assert (ROOT / "features" / "cql2.lark").is_file()


def test_the_architecture_docs_name_only_files_that_exist():
    """ARCHITECTURE.md and the README's architecture section point at real modules and
    folders (a rename that forgets the docs fails here)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Architecture"):readme.index("## API overview")]
    text = (ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8") + section
    paths = set(re.findall(r"`((?:gis_platform|layers|features|domains|indicators|tile_server|"
                           r"policy_maps|tests)/[A-Za-z0-9_./]*)`", text))
    assert len(paths) > 20
    missing = []
    for p in sorted(paths):
        if "<" in p or "NNNN" in p:
            continue
        target = ROOT / p.rstrip("/")
        if not (target.exists() or target.with_suffix(".py").exists()):
            missing.append(p)
    assert not missing, missing


def test_route_modules_are_not_libraries_for_other_packages():
    """A package's ``api`` (routes) module is imported only inside its own package: what
    other packages share (dependencies, checks, helpers) lives in core or library modules."""
    offenders = []
    for name, text in sources():
        pkg = name.split("/")[0]
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ImportFrom) and node.module:
                parts = node.module.split(".")
                if parts[-1] in ("api", "http") and parts[0] != pkg:
                    offenders.append((name, node.module))
    assert not offenders, offenders
