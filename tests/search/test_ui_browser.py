"""`rlnas ui` for a finished search: what it prints, the server it runs and stops, and the MLflow
UI's pages it points to as headless Chromium renders them (those two skipped where no Chromium
is installed; `.ci/run` installs it)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from search import SearchConfig, run_search
from search.pictures import PICTURES

CHROMIUM = next(
    (p for name in ("chromium", "chromium-browser", "google-chrome") if (p := shutil.which(name))),
    None,
)
RENDER_MS = 20_000
"""Virtual time the MLflow UI (a JavaScript app) gets to fetch and render a page."""

pytestmark = pytest.mark.slow
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium installed")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def chromium(url: str, *args: str) -> str:
    """What headless Chromium renders of `url` (``--dump-dom``, or what `args` ask)."""
    assert CHROMIUM is not None
    result = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         "--window-size=1400,900", f"--virtual-time-budget={RENDER_MS}", *args, url],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def rendered(url: str, needles: list[str], attempts: int = 3) -> str:
    """The DOM Chromium renders of `url` once it holds every one of `needles` (a machine
    busy with other work may leave the app's first render short of its data), else the
    last one rendered."""
    for _ in range(attempts):
        page = chromium(url, "--dump-dom")
        if all(needle in page for needle in needles):
            break
    return page


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A search of three small children by REINFORCE (whose statistics make a picture)."""
    root = tmp_path_factory.mktemp("ui")
    config = SearchConfig(
        task="digits",
        space="mlp",
        budget=3,
        epochs=2,
        concurrency=1,
        seed=2,
        name="ui-mlp",
        tracking_uri=f"sqlite:///{root / 'runs' / 'mlflow.db'}",
        storage=str(root / "runs" / "ray"),
        quiet=True,
    )
    return run_search(config)


@pytest.fixture(scope="module")
def ui(finished):
    """`rlnas ui` on a free loopback port, once it says the server is ready: its port, the
    lines it printed, and the runs table and pictures addresses among them. Stopping the
    command (SIGTERM, as Ctrl-C or a service manager does) must take the server with it."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    port = free_port()
    command = [sys.executable, "-m", "search.cli", "ui", "--port", str(port)]
    server = subprocess.Popen(
        [*command, "--tracking-uri", finished.tracking_uri],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        printed, deadline = [], time.monotonic() + 120
        while time.monotonic() < deadline:
            line = server.stdout.readline()
            assert line, f"rlnas ui ended before it was ready: {printed}"
            printed.append(line)
            if line.startswith("Ready at"):
                break
        urls = re.findall(r"http://127\.0\.0\.1:\d+/#\S+", "".join(printed))
        assert len(urls) == 2, printed
        yield {"port": port, "printed": printed, "runs": urls[0], "pictures": urls[1]}
        server.terminate()  # the command alone, not its process group
        server.wait(timeout=30)
        with socket.socket() as s, pytest.raises(OSError):  # the server went with it
            s.connect(("127.0.0.1", port))
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def test_rlnas_ui_says_where_to_look_and_serves_the_search(finished, ui):
    port, printed = ui["port"], ui["printed"]
    where = f"http://127.0.0.1:{port}/#/experiments/{finished.experiment_id}/runs"
    expected = f"{where}?workflowType=machine_learning&viewStateShareKey=rlnas-runs"
    assert "ui-mlp" in printed[1] and expected in printed[1]
    assert f"{where}/{finished.parent_run_id}/artifacts/rewards.png" in printed[2]
    assert any(line.startswith("Starting the server") for line in printed)
    assert printed[-1].startswith(f"Ready at http://127.0.0.1:{port} (")
    api = f"http://127.0.0.1:{port}/ajax-api/2.0/mlflow/runs/get?run_id={finished.parent_run_id}"
    with urllib.request.urlopen(api, timeout=30) as response:
        assert json.load(response)["run"]["info"]["run_id"] == finished.parent_run_id
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30) as response:
        assert b"<html" in response.read().lower()


@needs_chromium
def test_the_runs_table_lists_the_parent_run_and_its_children(finished, ui):
    parent = MlflowClient(finished.tracking_uri).get_run(finished.parent_run_id)
    names = [parent.info.run_name, "child-001", "child-002", "child-003"]
    page = rendered(ui["runs"], names)
    for name in names:
        assert name in page


@needs_chromium
def test_the_parent_runs_pictures_are_among_its_artifacts(finished, ui, tmp_path):
    assert finished.parent_run_id in ui["pictures"]
    preview = '<img alt="rewards.png" src="blob:'  # previewed: fetched and shown
    names = PICTURES[:-1]  # best_samples.png: generative searches only
    page = rendered(ui["pictures"], [*names, preview])
    for name in names:
        assert name in page
    assert preview in page
    shot = tmp_path / "pictures.png"
    chromium(ui["pictures"], f"--screenshot={shot}")
    assert shot.stat().st_size > 20_000  # the page with the picture, not a blank one
