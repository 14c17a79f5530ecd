"""The Dagster UI on the project's instance: dagster-webserver started as `depthcharge dagster` starts it
(the same command line and environment, on an ephemeral port, without the daemon so that no schedule or
sensor launches runs meanwhile) loads the code location without errors, and its GraphQL endpoint lists
every asset, asset check, job, schedule and sensor of the definitions."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from depthcharge.commands.dagster import free_port, serve_commands
from orchestration.definitions import defs
from tests.orchestration.conftest import Pipeline
from tests.orchestration.test_definitions import ASSETS, JOBS, SCHEDULES, SENSORS

HOST = "127.0.0.1"
LOAD_TIMEOUT_S = 240.0  # the location imports torch, sklearn and evidently: slow on a shared machine
CHECKS = {
    ("raw_snapshots", "raw_rows_in_order"),
    ("labelled_features", "features_finite"),
    ("labelled_features", "feature_spec_matches_registry"),
    ("labelled_features", "label_coverage"),
    ("labelled_features", "no_lookahead"),
    ("training_dataset", "class_balance"),
    ("training_dataset", "training_window_clean"),
}

WORKSPACE = """
{
  workspaceOrError {
    __typename
    ... on PythonError { message }
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError {
          __typename
          ... on PythonError { message stack }
          ... on RepositoryLocation {
            repositories {
              name
              jobs { name }
              schedules { name cronSchedule scheduleState { status } }
              sensors { name sensorState { status } }
              assetNodes {
                assetKey { path }
                groupName
                assetChecksOrError { __typename ... on AssetChecks { checks { name blocking } } }
              }
            }
          }
        }
      }
    }
  }
}
"""


def graphql(port: int, query: str) -> dict[str, Any]:
    request = urllib.request.Request(
        f"http://{HOST}:{port}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        body: dict[str, Any] = json.loads(response.read())
    assert "errors" not in body, body["errors"]
    return body["data"]


def loaded_workspace(port: int, server: subprocess.Popen[bytes], log: Path) -> dict[str, Any]:
    """The workspace once every location has left LOADING (the webserver loads it in the background)."""
    deadline = time.monotonic() + LOAD_TIMEOUT_S
    while True:
        if server.poll() is not None:
            pytest.fail(
                f"dagster-webserver exited with status {server.returncode}:\n{log.read_text()[-4000:]}"
            )
        try:
            workspace = graphql(port, WORKSPACE)["workspaceOrError"]
        except (urllib.error.URLError, ConnectionError):
            workspace = None
        if workspace is not None and all(e["loadStatus"] == "LOADED" for e in workspace["locationEntries"]):
            return workspace
        if time.monotonic() > deadline:
            pytest.fail(
                f"the UI did not load the location within {LOAD_TIMEOUT_S:.0f} s:\n{log.read_text()[-4000:]}"
            )
        time.sleep(1.0)


@pytest.mark.slow  # tens of seconds: the webserver's own process imports the whole location
def test_the_ui_loads_the_location_with_everything(
    pipeline: Pipeline, pg_instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    port = free_port(HOST)
    log = tmp_path / "webserver.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            serve_commands(HOST, port)["dagster-webserver"],
            env=dict(os.environ),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            workspace = loaded_workspace(port, server, log)
        finally:
            server.terminate()
            server.wait(timeout=30)
    assert workspace["__typename"] == "Workspace"
    [entry] = workspace["locationEntries"]
    assert entry["name"] == "orchestration.definitions"
    location = entry["locationOrLoadError"]
    assert location["__typename"] == "RepositoryLocation", location
    [repository] = location["repositories"]

    assets = {"/".join(node["assetKey"]["path"]): node for node in repository["assetNodes"]}
    assert (
        set(assets) == ASSETS == {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    )
    checks = set()
    for name, node in assets.items():
        found = node["assetChecksOrError"]
        assert found["__typename"] == "AssetChecks", (name, found)
        checks |= {(name, c["name"]) for c in found["checks"]}
        assert all(c["blocking"] for c in found["checks"]), (name, found)
    assert checks == CHECKS

    assert {j["name"] for j in repository["jobs"] if not j["name"].startswith("__")} == JOBS
    schedules = {
        s["name"]: (s["cronSchedule"], s["scheduleState"]["status"]) for s in repository["schedules"]
    }
    assert schedules == {name: (cron, "RUNNING") for name, (_, cron) in SCHEDULES.items()}
    sensors = {s["name"]: s["sensorState"]["status"] for s in repository["sensors"]}
    assert sensors == dict.fromkeys(SENSORS, "RUNNING")
