"""A tracking server that is down at the start, or goes down during a search: a real
`mlflow server` on loopback, stopped and started again on the same port and store."""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

from search.config import ConfigError
from search.mlflow_client import (
    TrackingClient,
    TrackingError,
    TrackingUnavailable,
    check_tracking,
    describe,
)

ROOT = Path(__file__).resolve().parents[2]
SPACE = """\
family: custom
decisions:
  - {name: a, choices: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]}
  - {name: b, choices: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MlflowServer:
    """`mlflow server` on 127.0.0.1 in its own process group, SQLite and artifacts in `root`."""

    def __init__(self, root: Path):
        self.root = root
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 90) -> None:
        command = [
            shutil.which("mlflow") or str(Path(sys.executable).with_name("mlflow")),
            "server",
            "--backend-store-uri",
            f"sqlite:///{self.root / 'mlflow.db'}",
            "--artifacts-destination",
            str(self.root / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            "1",
        ]
        # the server's background job runner (for GenAI evaluations) only slows its start
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        with open(self.root / "server.log", "ab") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=log, env=env, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, (self.root / "server.log").read_text()[-2000:]
            try:
                urllib.request.urlopen(f"{self.uri}/health", timeout=2).close()
                return
            except OSError:
                time.sleep(0.2)
        raise TimeoutError(f"mlflow server on {self.uri} did not start")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Signal the server's process group, then kill whatever of it is left."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=15)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self.process = None


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = MlflowServer(tmp_path_factory.mktemp("mlflow-server"))
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def up(server):
    """The shared server, running."""
    if server.process is None:
        server.start()
    return server


def test_unreachable_server_fails_at_once_before_ray_starts(tmp_path, monkeypatch, capsys):
    import ray

    import search.runner  # noqa: F401  (imported before the clock starts)
    from search.cli import main

    (tmp_path / "quickobj.py").write_text("def score(architecture):\n    return 1.0\n")
    (tmp_path / "toy.yaml").write_text(SPACE)
    monkeypatch.chdir(tmp_path)
    uri = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    code = main(
        ["search", "--objective", "quickobj:score", "--space", "toy.yaml", "--budget", "2"]
        + ["--tracking-uri", uri, "--quiet"]
    )
    seconds = time.monotonic() - started
    err = capsys.readouterr().err
    started_ray = ray.is_initialized()
    if started_ray:
        ray.shutdown()
    assert code == 2
    assert err.count("\n") == 1, err
    assert f"tracking server {uri}: unreachable (connection refused)" in err
    assert seconds < 5
    assert not started_ray


def test_outage_past_the_limit_stops_with_advice_to_resume():
    uri = f"http://127.0.0.1:{free_port()}"
    client = TrackingClient(uri, outage_limit=1.0, search_name="toy-search")
    started = time.monotonic()
    with pytest.raises(TrackingUnavailable) as caught:
        client.get_experiment_by_name("anything")
    assert 1.0 <= time.monotonic() - started < 8
    message = str(caught.value)
    assert "\n" not in message
    assert f"tracking server {uri}: unreachable since " in message
    assert "connection refused" in message and "`rlnas resume toy-search`" in message
    with pytest.raises(TrackingUnavailable):  # at once: the client gave up
        client.log_batch("0" * 32, params=[Param("a", "1")])
    client.close()  # already reported: nothing more to raise


class _BadGateway(http.server.BaseHTTPRequestHandler):
    """A proxy whose tracking server behind it is down: 503 to everything."""

    def do_GET(self):
        body = b"no healthy upstream"
        self.send_response(503)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_PUT = do_GET

    def log_message(self, *args):
        pass


def test_http_5xx_is_an_outage_too():
    proxy = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _BadGateway)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    uri = f"http://127.0.0.1:{proxy.server_address[1]}"
    try:
        with pytest.raises(ConfigError, match=r"unreachable \(HTTP 503\)"):
            check_tracking(uri)
        client = TrackingClient(uri, outage_limit=1.0)
        client.set_tag("0" * 32, "k", "v")
        with pytest.raises(TrackingUnavailable, match=r"\(HTTP 503\)"):
            client.flush(timeout=30)
        client.close()
    finally:
        proxy.shutdown()
        proxy.server_close()


def test_an_http_error_is_named_by_its_code_whichever_way_mlflow_reports_it():
    from mlflow.exceptions import MlflowException

    answered = MlflowException(
        "API request to endpoint /api/2.0/mlflow/runs/set-tag failed with error code 503 != 200."
        " Response body: 'no healthy upstream'"
    )
    assert describe(answered) == "HTTP 503"


@pytest.mark.slow
def test_writes_made_while_the_server_is_down_arrive_in_order(up, tmp_path):
    client = TrackingClient(up.uri, outage_limit=120)
    experiment = client.create_experiment("writes-while-down")
    run_id = client.create_run(experiment, run_name="r").info.run_id
    up.stop()

    began = time.monotonic()
    for step in range(5):
        client.log_batch(run_id, metrics=[Metric("loss", 1.0 / (step + 1), 1000 + step, step)])
        client.set_tag(run_id, "phase", f"step-{step}")  # the last one set must win
    model = tmp_path / "model-tmp"
    (model / "data").mkdir(parents=True)
    (model / "MLmodel").write_text("flavor: rlnas\n")
    (model / "data" / "weights.bin").write_bytes(bytes(range(256)) * 64)
    client.log_artifacts(run_id, str(model), "model")
    shutil.rmtree(model)  # as callers do with their temporary folders
    client.log_dict(run_id, {"width": 16}, "architecture.json")
    client.set_terminated(run_id, "FINISHED")
    assert time.monotonic() - began < 1  # queued, not waited for
    assert client.pending > 0

    time.sleep(0.5)
    up.start()
    assert client.flush(timeout=60)
    client.close()

    reader = MlflowClient(up.uri)
    run = reader.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["phase"] == "step-4"
    history = sorted(reader.get_metric_history(run_id, "loss"), key=lambda m: m.step)
    assert [(m.step, m.value) for m in history] == [(s, 1.0 / (s + 1)) for s in range(5)]
    got = Path(reader.download_artifacts(run_id, "", str(tmp_path / "back")))
    assert (got / "model" / "MLmodel").read_text() == "flavor: rlnas\n"
    assert (got / "model" / "data" / "weights.bin").read_bytes() == bytes(range(256)) * 64
    assert json.loads((got / "architecture.json").read_text()) == {"width": 16}


@pytest.mark.slow
def test_a_refused_write_is_one_clear_error(up):
    client = TrackingClient(up.uri)
    run_id = client.create_run(client.create_experiment("refused")).info.run_id
    client.log_batch(run_id, params=[Param("width", "16")])
    client.log_batch(run_id, params=[Param("width", "32")])  # MLflow refuses to change a param
    with pytest.raises(TrackingError) as caught:
        client.flush(timeout=30)
    message = str(caught.value)
    assert not isinstance(caught.value, TrackingUnavailable)
    assert "\n" not in message
    assert message.startswith(f"tracking {up.uri}: log_batch failed: INVALID_PARAMETER_VALUE")
    with pytest.raises(TrackingError):  # and every later call, without retrying
        client.set_tag(run_id, "after", "1")
    client.close()
    assert MlflowClient(up.uri).get_run(run_id).data.params == {"width": "16"}


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.mark.slow
def test_search_goes_on_across_a_server_restart(up, tmp_path):
    done = tmp_path / "done"
    done.mkdir()
    (tmp_path / "slowobj.py").write_text(
        "import json, time, uuid\n"
        "from pathlib import Path\n"
        "def score(architecture):\n"
        "    time.sleep(1.0)\n"
        f"    path = Path({str(done)!r}) / uuid.uuid4().hex\n"
        "    path.write_text(json.dumps(architecture))\n"
        "    return {'reward': architecture['a'] + architecture['b'] / 10}\n"
    )
    (tmp_path / "toy.yaml").write_text(SPACE)
    command = [sys.executable, "-m", "search.cli", "search", "--objective", "slowobj:score"]
    command += ["--space", "toy.yaml", "--controller", "random", "--budget", "8"]
    command += ["--concurrency", "2", "--seed", "3", "--name", "restart-toy"]
    command += ["--tracking-uri", up.uri, "--storage", str(tmp_path / "ray")]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with open(tmp_path / "search.out", "w+") as out:
        search = subprocess.Popen(
            command, cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        try:
            _wait_for(lambda: len(list(done.iterdir())) >= 3, 180, "3 children")
            up.stop(signal.SIGKILL)
            time.sleep(1)  # and the server's own start takes seconds more
            up.start()
            code = search.wait(timeout=180)
        finally:
            if search.poll() is None:
                os.killpg(search.pid, signal.SIGKILL)
                search.wait()
        out.seek(0)
        output = out.read()
    assert code == 0, output[-3000:]
    assert "unreachable (" in output and "answers again" in output
    assert "View run" not in output  # MLflow's own lines, printed by the writer thread

    trained = [json.loads(p.read_text()) for p in done.iterdir()]
    assert len(trained) == 8
    client = MlflowClient(up.uri)
    experiment = client.get_experiment_by_name("restart-toy")
    runs = client.search_runs([experiment.experiment_id], "")
    parents = [r for r in runs if r.data.tags.get("rlnas.role") == "search"]
    children = [r for r in runs if r.data.tags.get("rlnas.role") == "child"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert len(children) == 8 and len({c.info.run_name for c in children}) == 8
    seen = []
    for child in children:
        architecture = json.loads(child.data.tags["rlnas.architecture"])
        seen.append(architecture)
        assert child.info.status == "FINISHED"
        assert child.data.params["a"] == str(architecture["a"])
        assert child.data.params["b"] == str(architecture["b"])
        reward = architecture["a"] + architecture["b"] / 10
        assert child.data.metrics["reward"] == pytest.approx(reward)
        assert len(client.get_metric_history(child.info.run_id, "reward")) == 1
        text = client.download_artifacts(child.info.run_id, "architecture.json", str(tmp_path))
        assert json.loads(Path(text).read_text()) == architecture
    assert sorted(seen, key=json.dumps) == sorted(trained, key=json.dumps)
    finished = client.get_metric_history(parents[0].info.run_id, "children_finished")
    assert sorted(m.value for m in finished) == list(range(1, 9))
