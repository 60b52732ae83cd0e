"""Ray head nodes of their own for tests (`ray start --head` on loopback, a private temp dir),
and what tests need to watch a Ray session's processes."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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
        # a file, not a pipe: a head that fills an unread pipe blocks, Ctrl-C's clean-up too
        Path(self.temp_dir).mkdir(parents=True, exist_ok=True)
        self.log = Path(self.temp_dir) / "head.log"
        with self.log.open("w") as sink:
            self.process = self._start(sink, env)
        deadline = time.monotonic() + 120
        while not (Path(self.temp_dir) / "ray_current_cluster").exists():
            if self.process.poll() is not None:
                raise AssertionError(self.output())
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"ray start --head did not come up in 120 s: {self.output()}")
            time.sleep(0.5)

    def _start(self, sink, env: dict[str, str] | None) -> subprocess.Popen:
        """`ray start --head --block`, its output to `sink`."""
        return subprocess.Popen(
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
            stdout=sink,
            stderr=subprocess.STDOUT,
            env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0", **(env or {})},
            start_new_session=True,
        )

    def output(self) -> str:
        """The end of what `ray start` printed."""
        return self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""

    def stop(self) -> None:
        """Ctrl-C, as a user stops a head in the foreground; then SIGTERM (as a service manager
        stops it) if Ctrl-C has not ended it in 20 s."""
        for sig in (signal.SIGINT, signal.SIGTERM):
            if self.process.poll() is not None:
                return
            self.process.send_signal(sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=20)
        if self.process.poll() is None:
            self.kill()
            raise AssertionError(f"ray start outlived Ctrl-C and SIGTERM: {self.output()}")

    def kill(self) -> None:
        """A crash: SIGKILL for the head's processes, no `ray stop`; its address stays recorded."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        kill_all(session_processes(self.temp_dir))  # workers have process groups of their own

    def close(self) -> None:
        try:
            self.stop()
        finally:
            kill_all(session_processes(self.temp_dir))
            shutil.rmtree(self.temp_dir, ignore_errors=True)


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
