"""The Ray a search runs on (`search.cluster`): a Ray of its own, or an existing cluster (`ray
start --head` on loopback) joined through --address; its processes end with the driver; a
cluster that goes away ends the search."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from search.cluster import connect
from search.config import ConfigError
from tests.search.toy_search import cli, command, evaluated, runs_of, setup_dir, trained
from tests.search.toy_search import env as toy_env

ROOT = Path(__file__).resolve().parents[2]
RAY = shutil.which("ray") or str(Path(sys.executable).with_name("ray"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def short_temp_dir() -> str:
    return tempfile.mkdtemp(prefix="rlnas-ray-")  # short: Ray's socket paths have a limit


def session_processes(path: str) -> set[int]:
    """Live processes (not this one, not zombies) of the Ray sessions under `path`: those whose
    command line, open files or RAY_TMPDIR name it (Ray renames its agents and workers, so
    their command lines alone do not)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if (entry / "stat").read_bytes().rsplit(b")", 1)[1].split()[0] == b"Z":
                continue
            environ = (entry / "environ").read_bytes().split(b"\0")
            text = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            files = [os.readlink(fd) for fd in (entry / "fd").iterdir()]
        except OSError:  # ended meanwhile, or another user's
            continue
        if (
            f"RAY_TMPDIR={path}".encode() in environ
            or path in text
            or any(name.startswith(path) for name in files)
        ):
            found.add(int(entry.name))
    return found


def title(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def kill_all(pids: set[int]) -> None:
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def wait_for(condition, timeout: float, every: float = 0.2):
    """`condition()`'s first true value within `timeout` seconds, else its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(every)


class Head:
    """A head node of its own: `ray start --block` in the foreground, its temp dir private (so
    no other `ray.init()` on the machine finds it). `stop` is Ctrl-C, which ends only the
    processes it started (`ray stop` would end every Ray process on the machine)."""

    def __init__(self, temp_dir: str | None = None, env: dict[str, str] | None = None):
        self.port = free_port()
        self.temp_dir = temp_dir or short_temp_dir()
        self.address = f"127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [
                RAY,
                "start",
                "--head",
                "--block",
                f"--port={self.port}",
                "--node-ip-address=127.0.0.1",
                "--num-cpus=2",
                "--include-dashboard=false",
                f"--temp-dir={self.temp_dir}",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0", **(env or {})},
            start_new_session=True,
        )
        deadline = time.monotonic() + 120
        while not (Path(self.temp_dir) / "ray_current_cluster").exists():
            if self.process.poll() is not None:
                raise AssertionError(self.process.stdout.read()[-2000:])
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError("ray start --head did not come up in 120 s")
            time.sleep(0.5)

    def stop(self) -> None:
        """Ctrl-C, as a user stops a head in the foreground."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.kill()

    def kill(self) -> None:
        """A crash: SIGKILL for the head's processes, no `ray stop`; its address stays recorded."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        kill_all(session_processes(self.temp_dir))  # workers have process groups of their own

    def close(self) -> None:
        self.stop()
        kill_all(session_processes(self.temp_dir))
        shutil.rmtree(self.temp_dir, ignore_errors=True)


@pytest.fixture
def head():
    node = Head()
    try:
        yield node
    finally:
        node.close()


@pytest.fixture
def ray_head(head):
    """The address of a head node of its own (`Head`)."""
    return head.address


def driver_env(**extra: str | None) -> dict[str, str]:
    """The environment of a driver process: this checkout importable, no cluster asked for;
    ``NAME=None`` removes NAME."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_ADDRESS", None)
    for key, value in extra.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


CONNECT = textwrap.dedent(
    """
    import os, sys, time
    import ray
    from search.cluster import connect, disconnect
    from search.config import ConfigError

    started = time.monotonic()
    try:
        connected = connect(sys.argv[1] if len(sys.argv) > 1 else None)
    except ConfigError as exc:
        print(f"ConfigError: {exc}")
        sys.exit(2)

    @ray.remote
    def pid():
        return os.getpid()

    print(f"connected {connected} to {ray.get_runtime_context().gcs_address} in "
          f"{time.monotonic() - started:.0f} s; a task ran in process {ray.get(pid.remote())}")
    disconnect(connected)
    """
)


def run_connect(*args: str, env: dict[str, str], timeout: float, cwd: Path):
    return subprocess.run(
        [sys.executable, "-c", CONNECT, *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=timeout,
    )


def test_an_address_where_nothing_listens_fails_at_once():
    address = f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(ConfigError) as raised:
        connect(address)
    assert time.monotonic() - started < 5
    message = str(raised.value)
    assert address in message and "ray start --head" in message and "\n" not in message


def test_an_address_that_is_not_host_port_fails_at_once():
    with pytest.raises(ConfigError, match="HOST:PORT"):
        connect("127.0.0.1")


@pytest.mark.slow
def test_a_crashed_heads_recorded_address_is_not_joined(tmp_path):
    """A head killed without `ray stop` leaves its address in Ray's temp dir, where a plain
    `ray.init()` would try to join it for minutes; a search without an address starts its own."""
    root = short_temp_dir()  # RAY_TMPDIR: Ray's temp dir is root/ray, as /tmp/ray by default
    try:
        crashed = Head(temp_dir=f"{root}/ray")
        crashed.kill()
        recorded = (Path(root) / "ray" / "ray_current_cluster").read_text().strip()
        assert recorded.endswith(f":{crashed.port}")
        result = run_connect(env=driver_env(RAY_TMPDIR=root), timeout=45, cwd=tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]
        assert "connected True to " in result.stdout
        assert f":{crashed.port} " not in result.stdout  # a Ray of its own, not the dead one
    finally:
        kill_all(session_processes(root))
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow
def test_a_head_that_asks_for_a_token_is_joined_with_the_token_at_hand(tmp_path):
    """`ray start --head` turns token authentication on when it finds a token (as the one a
    local `ray.init()` writes to ~/.ray/auth_token); a driver given an address sends it only
    with RAY_AUTH_MODE=token, and otherwise retried for a minute before failing."""
    token = tmp_path / "token"
    token.write_text(secrets.token_hex(32))
    home = tmp_path / "home"  # no ~/.ray/auth_token there
    home.mkdir()
    auth = {"RAY_AUTH_MODE": None, "RAY_AUTH_TOKEN": None, "RAY_AUTH_TOKEN_PATH": None}
    node = Head(env={"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)})
    try:
        # no token on this machine: one line, at once, saying what to set
        started = time.monotonic()
        refused = run_connect(
            node.address, env=driver_env(HOME=str(home), **auth), timeout=60, cwd=tmp_path
        )
        assert time.monotonic() - started < 12
        assert refused.returncode == 2, refused.stderr[-3000:]
        assert refused.stdout.startswith(f"ConfigError: the Ray cluster at {node.address} asks")
        assert "RAY_AUTH_TOKEN" in refused.stdout and refused.stdout.count("\n") == 1
        # the token at hand (RAY_AUTH_MODE unset): joined
        joined = run_connect(
            node.address,
            env=driver_env(HOME=str(home), **{**auth, "RAY_AUTH_TOKEN_PATH": str(token)}),
            timeout=45,
            cwd=tmp_path,
        )
        assert joined.returncode == 0, joined.stderr[-3000:]
        assert "connected True to " in joined.stdout and "a task ran" in joined.stdout
        # the cluster outlives the driver (`disconnect`, as a search ends, leaves it running)
        status = subprocess.run(
            [RAY, "status", f"--address={node.address}"],
            capture_output=True,
            text=True,
            env=driver_env(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token)),
            timeout=120,
        )
        assert status.returncode == 0, status.stderr[-2000:]
    finally:
        node.close()


@pytest.mark.slow
def test_a_cluster_whose_workers_cannot_import_rlnas_is_refused_in_one_line(tmp_path):
    """Else every child fails to start and Ray prints a traceback from each worker."""
    elsewhere = tmp_path / "site"  # what the workers import first: a controller that fails
    (elsewhere / "controller").mkdir(parents=True)
    (elsewhere / "controller" / "__init__.py").write_text("raise ImportError('not rlnas')\n")
    node = Head(env={"PYTHONPATH": str(elsewhere)})
    try:
        refused = run_connect(node.address, env=driver_env(), timeout=120, cwd=tmp_path)
        assert refused.returncode == 2, refused.stderr[-3000:]
        assert refused.stdout == (
            f"ConfigError: the Ray cluster at {node.address} cannot run rlnas: its workers fail "
            "to import it (ImportError: not rlnas); install rlnas, the same version as here, on "
            "every node\n"
        )
    finally:
        node.close()


DRIVER = textwrap.dedent(
    """
    import os, time
    import ray
    from search.cluster import connect

    connect(None)

    @ray.remote
    def pid():
        return os.getpid()

    @ray.remote
    class Actor:
        def pid(self):
            return os.getpid()

    actor = Actor.remote()
    print("ready", ray.get(pid.remote()), ray.get(actor.pid.remote()), flush=True)
    time.sleep(600)
    """
)


def start_driver(root: str, out: Path) -> subprocess.Popen:
    """A driver that starts a Ray of its own under `root`, runs a task and an actor, then
    waits; its output goes to `out`."""
    with out.open("w") as sink:
        return subprocess.Popen(
            [sys.executable, "-c", DRIVER],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=driver_env(RAY_TMPDIR=root),
            cwd=out.parent,
        )


@pytest.mark.slow
def test_the_ray_of_a_killed_driver_ends_with_it_and_no_other(tmp_path):
    """SIGKILL leaves Ray's agents (ray::DashboardAgent, ray::RuntimeEnvAgent) running for
    good; the watchdog ends every process of that driver's Ray, and none of another's."""
    roots = [short_temp_dir(), short_temp_dir()]
    outs = [tmp_path / "killed.out", tmp_path / "other.out"]
    drivers = [start_driver(root, out) for root, out in zip(roots, outs, strict=True)]
    try:
        for process, out in zip(drivers, outs, strict=True):
            ready = wait_for(lambda out=out: "ready" in out.read_text(), timeout=120)
            assert ready, process.poll() or out.read_text()[-3000:]
        killed, other = (session_processes(root) for root in roots)
        worker = int(outs[0].read_text().split("ready", 1)[1].split()[1])
        assert worker in killed and len(killed) >= 6  # gcs, raylet, agents, workers, ...
        drivers[0].send_signal(signal.SIGKILL)
        drivers[0].wait()
        # a few seconds; more on a machine loaded by the rest of the suite
        left = wait_for(lambda: not session_processes(roots[0]), timeout=30)
        assert left, f"left running: {[title(p) for p in session_processes(roots[0])]}"
        # the other Ray is untouched (but for idle workers, which Ray may end on its own)
        assert {pid for pid in other if not title(pid).startswith("ray::IDLE")} <= (
            session_processes(roots[1])
        )
        # the other driver ends another way (SIGTERM): its Ray goes as well
        drivers[1].terminate()
        drivers[1].wait()
        assert wait_for(lambda: not session_processes(roots[1]), timeout=30)
    finally:
        for process in drivers:
            if process.poll() is None:
                process.kill()
                process.wait()
        for root in roots:
            kill_all(session_processes(root))
            shutil.rmtree(root, ignore_errors=True)


TUNED = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from ray import tune
    from search.cluster import ClusterLost, ClusterWatch, connect

    address, where, stuck = sys.argv[1], Path(sys.argv[2]), sys.argv[3] == "stuck"
    connect(address)

    def child(config):
        (where / f"child-{config['i']}").touch()
        time.sleep(600)

    class Stuck(tune.Callback):
        \"\"\"Tune's loop waits for good once both children run (as it does in a request to
        a gone cluster).\"\"\"
        def on_step_begin(self, iteration, trials, **info):
            if stuck and len(list(where.glob("child-*"))) == 2:
                (where / "stuck").touch()
                time.sleep(600)

    def lost(exc):
        print(f"ClusterLost (stuck): {exc}", flush=True)
        os._exit(3)

    tuner = tune.Tuner(
        child,
        param_space={"i": tune.grid_search([0, 1])},
        run_config=tune.RunConfig(
            storage_path=str(where / "tune"),
            verbose=0,
            callbacks=[ClusterWatch("demo", on_stuck=lost), Stuck()],
        ),
    )
    try:
        tuner.fit()
    except ClusterLost as exc:
        print(f"ClusterLost: {exc}", flush=True)
        sys.exit(3)
    print("fit returned", flush=True)
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("loop", ["free", "stuck"])
def test_a_search_whose_cluster_goes_away_stops_with_cluster_lost(head, tmp_path, loop):
    """Stopping the head fails the children; without `ClusterWatch`, Tune either ends as if
    they had failed or waits until Ray ends the driver a minute later. Tune's loop either
    raises `ClusterLost` itself, or is stuck (in a request to the gone cluster) and the watch
    ends the process."""
    out = tmp_path / "driver.out"
    with out.open("w") as sink:
        process = subprocess.Popen(
            [sys.executable, "-c", TUNED, head.address, str(tmp_path), loop],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=driver_env(),
            cwd=tmp_path,
        )
    try:
        running = wait_for(lambda: len(list(tmp_path.glob("child-*"))) == 2, timeout=120)
        assert running, out.read_text()[-3000:]
        if loop == "stuck":
            assert wait_for((tmp_path / "stuck").exists, timeout=60), out.read_text()[-3000:]
        head.stop()
        stopped = time.monotonic()
        process.wait(timeout=60)
        assert time.monotonic() - stopped < 60
        lines = [line for line in out.read_text().splitlines() if line.startswith("ClusterLost")]
        assert process.returncode == 3, out.read_text()[-3000:]
        assert len(lines) == 1, out.read_text()[-3000:]
        assert lines[0].split(": ", 1)[1] == (
            f"the Ray cluster at {head.address} is gone; the search stopped: "
            "resume it with `rlnas resume demo` once the cluster is back, or on a Ray of its own "
            "with `rlnas resume demo --address local`"
        )
        if loop == "stuck":
            assert lines[0].startswith("ClusterLost (stuck)")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.slow
def test_a_search_on_a_cluster_that_goes_away_stops_and_resumes_on_a_ray_of_its_own(head, tmp_path):
    """A search on a cluster stops in one line when the cluster goes away mid-children (its
    records ended, not left running), and resumes on a Ray of its own to the budget, each
    child recorded once."""
    cwd = setup_dir(tmp_path, sleep=3)
    search = ("--objective", "toyobj:score", "--space", "space.yaml", "--controller", "evolution")
    search += ("--name", "on-cluster", "--seed", "3", "--budget", "6", "--address", head.address)
    environ = toy_env()
    environ.pop("RAY_AUTH_MODE", None)  # the search finds the cluster's token itself
    process = subprocess.Popen(
        command("search", *search),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
        env=environ,
    )
    try:
        # two children finished, two running
        assert wait_for(lambda: len(evaluated(cwd)) >= 4, timeout=180), process.stderr.read()
        head.stop()
        stdout, stderr = process.communicate(timeout=60)  # Ray alone would end it after 60 s
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert "2 at a time" in stdout  # the cluster's 2 CPUs
    assert process.returncode == 1, stderr[-3000:]
    last = stderr.strip().splitlines()[-1]
    assert " is gone; the search stopped: resume it with `rlnas resume on-cluster` " in last
    assert head.address.rsplit(":", 1)[1] in last  # the cluster's port
    runs = runs_of(cwd, "on-cluster")
    assert not [r for r in runs if r.info.status == "RUNNING"]  # the records were ended
    assert len(trained(cwd, "on-cluster")) == 2

    refused = cli(cwd, "resume", "on-cluster")  # where it ran: the cluster is still gone
    assert refused.returncode == 2, refused.stderr[-3000:]
    assert "nothing listens there" in refused.stderr and "--address local" in refused.stderr
    done = cli(cwd, "resume", "on-cluster", "--address", "local")
    assert done.returncode == 0, done.stderr[-3000:]
    finished = trained(cwd, "on-cluster")
    assert len(finished) == len(set(finished)) == 6
