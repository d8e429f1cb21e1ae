"""The README's cURL walkthrough, run as written against a real gateway, worker and
simulator: if a route, field or answer it relies on changes, this fails."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from bson import ObjectId

README = Path(__file__).resolve().parents[2] / "README.md"
SECTION = re.compile(r"<!-- walkthrough:start -->(.*?)<!-- walkthrough:end -->", re.DOTALL)
BLOCK = re.compile(r"```sh\n(.*?)```", re.DOTALL)


def walkthrough_script() -> str:
    section = SECTION.search(README.read_text())
    assert section, "README.md has no walkthrough section"
    blocks = BLOCK.findall(section.group(1))
    assert len(blocks) >= 5, "the walkthrough's shell blocks went missing"
    return "\n".join(blocks)


def test_every_command_of_the_readme_walkthrough_runs(gateway, monnify_sim, db):
    for tool in ("bash", "curl", "python3"):
        assert shutil.which(tool), f"the walkthrough needs {tool} on PATH"
    # Only the test's own lines: strict mode, and the ids it checks below.
    script = f'set -euo pipefail\n{walkthrough_script()}\necho\necho "CALL_ID=$CALL_ID"\n'
    done = subprocess.run(
        ["bash", "-c", script],
        env={**os.environ, "API": gateway, "SIM": monnify_sim},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    call_id = re.search(r"^CALL_ID=([0-9a-f]{24})$", done.stdout, re.MULTILINE)
    assert call_id, done.stdout[-2000:]

    call = db.calls.find_one({"_id": ObjectId(call_id.group(1))})
    assert call["status"] == "ended" and call["endReason"] == "caller_hangup"
    assert call["settled"] and call["cost"] > 0
    # The history it printed names the call, and the bill it printed is the stored one.
    assert done.stdout.count(call_id.group(1)) >= 3
    assert '"status": "ended"' in done.stdout or '"status":"ended"' in done.stdout
