"""The Ray a search runs on (`search.cluster`): a Ray of its own, or an existing cluster (`ray
start --head` on loopback) joined through --address; its processes end with the driver (a
cluster that goes away: `test_cluster_lost`)."""

from __future__ import annotations

import secrets
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from search.cluster import connect
from search.config import ConfigError
from tests.search.ray_heads import (
    RAY,
    Head,
    driver_env,
    free_port,
    kill_all,
    session_processes,
    short_temp_dir,
    title,
    wait_for,
)

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
