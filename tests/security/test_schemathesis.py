"""Property-based API fuzzing with schemathesis over /openapi.json against a live server.

CI-sized: a few examples per operation (``SCHEMATHESIS_MAX_EXAMPLES``, default 5), positive
and negative data, two checks - no 5xx, and every documented response schema holds.  The
longer run is ``bench/security/fuzz.sh``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_fuzzing_the_openapi_document_finds_no_5xx_and_no_schema_violation(world, tmp_path):
    exe = shutil.which("schemathesis", path=str(Path(sys.executable).parent)) or shutil.which("schemathesis")
    assert exe, "schemathesis is not installed: pip install -e '.[dev]'"
    cmd = [exe, "run", f"{world.server.url}/openapi.json",
           "--checks", "not_a_server_error,response_schema_conformance",
           "--max-examples", os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "5"),
           "--phases", "examples,coverage,fuzzing", "--seed", "7",
           # one worker: a CI run once hit an unclassified engine error in the coverage phase
           # with two, never reproduced in 11 local runs under load; one is also deterministic
           "--workers", "1",
           "--request-timeout", "30", "--no-color",
           "--header", f"Authorization: Bearer {world.tokens['staff']}",
           "--generation-database", "none",
           # uploads and deletes would change the shared world; they are fuzzed in bench/security
           "--exclude-path-regex", r"^/layers/upload$", "--exclude-method", "DELETE"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=480, cwd=tmp_path)
    out = proc.stdout + proc.stderr
    (tmp_path / "schemathesis.txt").write_text(out)
    assert proc.returncode == 0, _failure_summary(out)
    tested = int(out.split("Tested:")[1].split()[0]) if "Tested:" in out else 0
    assert tested >= 20, out[-3000:]


def _failure_summary(out: str) -> str:
    """The parts of a failed run a person needs first: its ERRORS and FAILURES sections and the
    summary (the full output is long, and a CI log keeps only its head and tail)."""
    parts = []
    for title in ("ERRORS", "FAILURES"):
        marker = f" {title} "
        if marker in out:
            section = out.split(marker, 1)[1]
            parts.append(f"{title}:" + section.split("\n====", 1)[0][:4000])
    return "\n".join(parts) + "\n...\n" + out[-1500:]

