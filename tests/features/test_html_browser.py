"""The HTML items page in a real headless Chromium: the offline Leaflet map draws every feature."""

from __future__ import annotations

import shutil
import subprocess
import tempfile

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.mark.browser
def test_items_page_map_draws_every_feature_offline(feature_world):
    url = f"{feature_world.server.url}/collections/districts/items?f=html&limit=25"
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        out = subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
             "--virtual-time-budget=8000", "--dump-dom", url],
            capture_output=True, text=True, timeout=120, check=False)
    dom = out.stdout
    assert out.returncode == 0, out.stderr[-1000:]
    assert "leaflet-container" in dom                      # Leaflet loaded from /static and ran
    assert dom.count('class="leaflet-interactive"') == 25  # one SVG path per district
    assert "강남구" in dom
