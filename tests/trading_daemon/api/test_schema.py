"""schemathesis against the running daemon's own OpenAPI schema: no 500, no answer outside the schema.

Run as the `schemathesis` command in a subprocess (the daemon shares this test's event loop, so nothing here
may block it), as an admin so that every operation is reachable. Left out: change-password, which would
revoke the token the run uses. The counts are printed for the closing note.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from tests.trading_daemon.api.conftest import LiveApi

pytestmark = pytest.mark.slow(seconds=100)
CHECKS = "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance"


@pytest.mark.timeout(900)
async def test_schemathesis_finds_no_server_error_and_no_schema_violation(
    live_api: LiveApi, tmp_path: Path
) -> None:
    report = tmp_path / "schemathesis.json"
    command = [
        str(Path(sys.executable).with_name("schemathesis")), "run", f"{live_api.url}/openapi.json",
        "--header", f"Authorization: Bearer {live_api.token('admin')}",
        "--checks", CHECKS, "--max-examples", "12", "--seed", "7", "--workers", "1",
        "--exclude-path", "/api/auth/change-password",
        "--request-timeout", "30", "--suppress-health-check", "all",
        "--report", "json,junit", "--report-json-path", str(report), "--report-junit-path", str(tmp_path / "junit.xml"),
    ]  # fmt: skip
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=tmp_path
    )
    out, _ = await asyncio.wait_for(process.communicate(), 800)
    text = out.decode(errors="replace")
    (tmp_path / "schemathesis.txt").write_text(text)
    summary = json.loads(report.read_text())
    operations, cases = summary["operations"]["tested"], summary["test_cases"]["generated"]
    failures = sum(f["count"] for f in summary["failures"]) + sum(e["count"] for e in summary["errors"])
    print(f"schemathesis: {operations} operations, {cases} test cases, {failures} failures")
    assert process.returncode == 0 and failures == 0, text[-6000:]
    assert operations >= 50 and cases > 5 * operations, summary
