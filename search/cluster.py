"""The Ray a search runs on: started for the search alone or joined at an address, and watched.

`connect` starts a local Ray unless an address is asked for (the argument or RAY_ADDRESS), so a
dead `ray start` head recorded in Ray's temp dir is never joined. Joining checks first that the
address answers as a Ray cluster and, when the cluster asks for a token, uses the token this
machine holds (as Ray itself does only for clusters it finds on its own). A local Ray gets a
watchdog process that ends all of that Ray's processes once the driver is gone, however it ended.
`ClusterWatch` ends `Tuner.fit()` with `ClusterLost` when the cluster goes away mid-search.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable
from typing import Any

import ray
from ray import tune
from ray._raylet import NodeID

from search.config import ConfigError

__all__ = ["ClusterLost", "ClusterWatch", "connect", "disconnect", "exit_lost"]

SESSION_VAR = "RLNAS_RAY_SESSION"
"""Set, to a value of its own, in the environment of every process of a Ray that `connect`
starts: what its watchdog recognises them by."""

CONNECT_TIMEOUT_S = 3.0
"""How long a cluster's address may take to accept a connection."""
PROBE_TIMEOUT_MS = 2000
"""How long a cluster's GCS may take to answer its first request."""
WORKER_PROBE_TIMEOUT_S = 60.0
"""How long a joined cluster's workers may take to say whether they can import rlnas."""

_INIT: dict[str, Any] = {
    "logging_level": logging.WARNING,
    "log_to_driver": False,  # children report through Tune; errors come back as files
    "configure_logging": True,
}
_watchdog: subprocess.Popen | None = None


def connect(address: str | None = None) -> bool:
    """Start a Ray of this process's own, or join the cluster at `address` (else RAY_ADDRESS).

    Returns whether this call connected Ray (False when it already was); `disconnect(True)`
    undoes it. Raises `ConfigError`, in one line, when nothing answers at the address as a Ray
    cluster or the cluster refuses this machine.
    """
    if ray.is_initialized():
        return False
    # Ray announces its token authentication (and the lack of it) on stderr.
    logging.getLogger("ray._private.authentication").setLevel(logging.ERROR)
    address, source = _requested(address)
    if address is None:
        _start_local()
    else:
        _join(address, source)
    return True


def disconnect(started: bool) -> None:
    """Undo a `connect` that returned `started`: leave (or stop) its Ray, end its watchdog."""
    if started:
        ray.shutdown()
        _stop_watchdog()


def _requested(address: str | None) -> tuple[str | None, str]:
    """The cluster address asked for (None: a Ray of our own) and where it was asked."""
    source = "address"
    if not address:
        address, source = os.environ.get("RAY_ADDRESS") or None, "RAY_ADDRESS"
    if address in (None, "local"):
        return None, source
    if address == "auto":  # Ray's word for the last `ray start` on this machine
        from ray._private.services import canonicalize_bootstrap_address

        try:
            address = canonicalize_bootstrap_address("auto")
        except ConnectionError:
            raise ConfigError(
                f"{source} auto: no Ray cluster was started on this machine (`ray start --head`)"
            ) from None
    return address, source


def _start_local() -> None:
    """A new local Ray, whatever Ray's temp dir records, with a watchdog for its processes."""
    global _watchdog
    session = uuid.uuid4().hex
    _watchdog = _start_watchdog(f"{SESSION_VAR}={session}")  # first: covers a death in init
    outer = os.environ.get(SESSION_VAR)
    os.environ[SESSION_VAR] = session
    try:
        # "local": a new Ray, where None would join the address Ray's temp dir last recorded
        ray.init(address="local", include_dashboard=False, **_INIT)
    except BaseException:
        _stop_watchdog()
        raise
    finally:
        # Ray's processes carry it; nothing else this process starts
        if outer is None:
            del os.environ[SESSION_VAR]
        else:
            os.environ[SESSION_VAR] = outer


def _join(address: str, source: str) -> None:
    """Join the cluster at `address` once it answers, with a token when it asks for one."""
    if "://" not in address:  # Ray Client addresses (ray://) are Ray's to check
        host, port = _host_port(address, source)
        _check_listening(host, port, address, source)
        _check_admitted(address)
    try:
        ray.init(address=address, **_INIT)
    except ConnectionError as exc:
        raise ConfigError(f"{source} {address}: {exc}") from None
    try:
        _check_workers_import(address)
    except BaseException:
        ray.shutdown()
        raise


def _check_workers_import(address: str, timeout: float = WORKER_PROBE_TIMEOUT_S) -> None:
    """The cluster's workers can import rlnas (else every child fails to start, in tracebacks
    Ray prints from each worker). Says nothing when no worker answers within `timeout`."""

    def imports() -> str | None:  # nested: Ray ships it by value, not as rlnas code
        try:
            import controller  # noqa: F401
            import search  # noqa: F401
            import spaces  # noqa: F401
            import trainers  # noqa: F401
        except ImportError as exc:
            return f"{type(exc).__name__}: {exc}"
        return None

    probe = ray.remote(num_cpus=0, max_retries=0)(imports).remote()
    ready, _ = ray.wait([probe], timeout=timeout)
    problem = ray.get(probe) if ready else None
    if problem is not None:
        raise ConfigError(
            f"the Ray cluster at {address} cannot run rlnas: its workers fail to import it "
            f"({problem}); install rlnas, the same version as here, on every node"
        )


def _host_port(address: str, source: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"{source} {address!r}: a Ray cluster's address is HOST:PORT")
    return host.strip("[]"), int(port)


def _check_listening(host: str, port: int, address: str, source: str) -> None:
    """Something accepts connections at the address (else Ray retries for a minute)."""
    try:
        socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        reason = (
            "nothing listens there"
            if isinstance(exc, ConnectionRefusedError)
            else exc.strerror or str(exc) or type(exc).__name__
        )
        via, instead = " (RAY_ADDRESS)", "unset RAY_ADDRESS"
        if source != "RAY_ADDRESS":
            via, instead = "", "use --address local"
        raise ConfigError(
            f"no Ray cluster at {address}{via}: {reason}; start one there with "
            f"`ray start --head --port={port}`, or {instead} to run on a Ray of the search's own"
        ) from None


def _check_admitted(address: str) -> None:
    """The cluster's GCS answers this machine; turns token authentication on when the cluster
    asks for a token and this machine holds one (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or
    ~/.ray/auth_token) while RAY_AUTH_MODE leaves it unsaid."""
    refusal = _gcs_refusal(address)
    if refusal is None:
        return
    ask = "set RAY_AUTH_TOKEN to the cluster's token (`ray get-auth-token` on its head)"
    if refusal != "token":
        raise ConfigError(f"{address} does not answer as a Ray cluster: {refusal}")
    mode = os.environ.get("RAY_AUTH_MODE")
    if mode is not None and mode.lower() != "token":
        raise ConfigError(
            f"the Ray cluster at {address} asks for a token, which RAY_AUTH_MODE={mode} does "
            f"not send: unset RAY_AUTH_MODE and {ask}"
        )
    if not _holds_token():
        raise ConfigError(
            f"the Ray cluster at {address} asks for a token and this machine has none: {ask}, "
            "or RAY_AUTH_TOKEN_PATH to a file holding it"
        )
    if mode is None:
        _enable_token_auth()
        if _gcs_refusal(address) is None:
            return
    raise ConfigError(f"the Ray cluster at {address} refuses this machine's token: {ask}")


def _gcs_refusal(address: str) -> str | None:
    """None when the GCS at `address` answers; "token" when it wants a (valid) token; else why
    it does not answer."""
    # Ray's _raylet.pyi declares only its ID and ObjectRef types
    from ray._raylet import InnerGcsClient  # type: ignore[attr-defined]

    try:
        with _quiet_stderr():
            InnerGcsClient.standalone(address, None, PROBE_TIMEOUT_MS)
    except ray.exceptions.AuthenticationError:
        return "token"
    except Exception as exc:
        return " ".join(str(exc).split()) or type(exc).__name__
    return None


def _holds_token() -> bool:
    # Ray's _raylet.pyi declares only its ID and ObjectRef types
    from ray._raylet import AuthenticationTokenLoader  # type: ignore[attr-defined]

    return AuthenticationTokenLoader.instance().has_token(ignore_auth_mode=True)


def _enable_token_auth() -> None:
    """Token authentication for this process and all it starts (what Ray does itself when it
    joins a cluster it found on its own)."""
    # Ray's _raylet.pyi declares only its ID and ObjectRef types
    from ray._raylet import AuthenticationTokenLoader, Config  # type: ignore[attr-defined]

    os.environ["RAY_AUTH_MODE"] = "token"
    Config.initialize("")  # Ray's C++ side reads its settings (the mode among them) again
    AuthenticationTokenLoader.instance().reset_cache()


@contextlib.contextmanager
def _quiet_stderr():
    """Ray's C++ client logs every failed attempt on file descriptor 2; the `ConfigError` that
    follows says it in one line."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _start_watchdog(tag: str) -> subprocess.Popen | None:
    """The watchdog of this driver's local Ray (Linux: it reads /proc; elsewhere none)."""
    if not os.path.isdir("/proc/self"):
        return None
    code = f"{inspect.getsource(_watch)}\n_watch({os.getpid()}, {tag!r})\n"
    env = {key: value for key, value in os.environ.items() if key != SESSION_VAR}
    return subprocess.Popen(
        [sys.executable, "-I", "-S", "-c", code],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,  # holds none of the driver's pipes open
        start_new_session=True,  # outlives the driver's process group and terminal
    )


def _stop_watchdog() -> None:
    """Ask the watchdog to end what is left of the Ray, and wait for it."""
    global _watchdog
    if _watchdog is None:
        return
    _watchdog.terminate()
    try:
        _watchdog.wait(timeout=20)
    except subprocess.TimeoutExpired:
        _watchdog.kill()
        _watchdog.wait()
    _watchdog = None


def _watch(driver: int, tag: str, every: float = 0.2, sweep_s: float = 10.0) -> None:
    """The watchdog: waits until the `driver` process is gone (or SIGTERM asks it to stop),
    then kills every process whose environment holds `tag` (``NAME=value``) and every process
    it saw descend from the driver, until none is left.

    Runs alone from its source in a small interpreter of its own (no Ray, no rlnas), hence
    self-contained.
    """
    import contextlib
    import os
    import signal
    import time

    def started(pid):
        """The process's start time, or None once it has ended (a zombie has ended)."""
        try:
            with open(f"/proc/{pid}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            return None
        return None if fields[0] in (b"Z", b"X") else fields[19]

    def processes():
        """(pid, parent pid, start time, environment) of every process but this one."""
        for name in os.listdir("/proc"):
            if not name.isdigit() or int(name) == os.getpid():
                continue
            try:
                with open(f"/proc/{name}/stat", "rb") as stat:
                    fields = stat.read().rsplit(b")", 1)[1].split()
                with open(f"/proc/{name}/environ", "rb") as environ:
                    env = environ.read().split(b"\0")
            except (OSError, IndexError):  # ended, or another user's
                continue
            if fields[0] not in (b"Z", b"X"):
                yield int(name), int(fields[1]), fields[19], env

    def descendants(known):
        """`known` (pid -> start time) grown by the tagged processes alive now and their
        descendants: a renamed process (Ray's agents) may have lost its environment, not its
        ancestry."""
        wanted = tag.encode()
        table = list(processes())
        for pid, _, start, env in table:
            if wanted in env:
                known.setdefault(pid, start)
        for _ in range(4):  # a few generations: raylet -> agents -> workers
            for pid, parent, start, _ in table:
                if parent in known:
                    known.setdefault(pid, start)

    def doomed(known):
        wanted = tag.encode()
        return [
            pid for pid, _, start, env in processes() if wanted in env or known.get(pid) == start
        ]

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    born = started(driver)  # pid and start time: a reused pid is another process
    family: dict[int, bytes] = {}
    while not stop and born is not None and started(driver) == born:
        descendants(family)
        time.sleep(every)
    deadline = time.monotonic() + sweep_s
    while time.monotonic() < deadline:
        descendants(family)  # children the dying ones start meanwhile
        pids = doomed(family)
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)


class ClusterLost(BaseException):
    """The Ray cluster of a running search is gone.

    A BaseException, as KeyboardInterrupt is: Tune meets an Exception raised in a callback with
    its cleanup, whose requests to the gone cluster block until Ray ends the process (60 s
    after the cluster went away); this one leaves `Tuner.fit()` at once.
    """

    def __init__(self, address: str, name: str):
        self.address = address
        self.name = name
        super().__init__(
            f"the Ray cluster at {address} is gone; the search stopped: resume it with "
            f"`rlnas resume {name}` once the cluster is back, or on a Ray of its own with "
            f"`rlnas resume {name} --address local`"
        )


class ClusterWatch(tune.Callback):
    """Ends `Tuner.fit()` with `ClusterLost` once the cluster stops answering.

    A thread of its own asks the cluster's GCS every `every` seconds whether this driver's node
    is alive (no answer within `timeout` seconds, or a dead node, is a lost cluster); Tune's
    loop raises `ClusterLost` at its next step once the thread found it so, and after each
    failed trial it asks itself (a cluster going away fails its trials first). Tune's loop can
    itself be stuck in a request to the gone cluster (removing a failed trial's placement group
    waits on the GCS until Ray ends the process, 60 s later): when it has not raised `grace`
    seconds after the loss, the thread calls `on_stuck` with the `ClusterLost`, which by
    default says so on stderr and ends the process with exit status 1 (`exit_lost`).
    """

    def __init__(
        self,
        name: str,
        every: float = 5.0,
        timeout: float = 10.0,
        grace: float = 5.0,
        on_stuck: Callable[[ClusterLost], Any] | None = None,
    ):
        self.name = name
        self.every = every
        self.timeout = timeout
        self.grace = grace
        self.on_stuck = on_stuck or exit_lost
        self._address = ""  # the GCS's, once `setup` ran
        self._node: NodeID | None = None
        self._lost = threading.Event()
        self._done = threading.Event()  # Tune's loop raised, or the search is over
        self._thread: threading.Thread | None = None

    def __getstate__(self) -> dict[str, Any]:
        """What Tune saves with its experiment: the settings, not the thread or `on_stuck`."""
        return {key: getattr(self, key) for key in ("name", "every", "timeout", "grace")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)  # type: ignore[misc]

    def setup(self, *args: Any, **info: Any) -> None:
        context = ray.get_runtime_context()
        self._address = context.gcs_address
        self._node = NodeID.from_hex(context.get_node_id())
        if self._thread is None:
            self._thread = threading.Thread(target=self._watch, name="rlnas-cluster", daemon=True)
            self._thread.start()

    def on_step_begin(self, iteration, trials, **info):
        if self._lost.is_set():  # the thread found it gone
            self.check()

    def on_trial_error(self, iteration, trials, trial, **info):
        self.check()

    def on_experiment_end(self, trials, **info):
        self.close()

    def close(self) -> None:
        """Stop watching (the search is over, or ends another way)."""
        self._done.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(self.timeout + 5)

    def check(self) -> None:
        """Raise `ClusterLost` unless the cluster answers that this driver's node is alive."""
        if self._node is None:
            self.setup()
        if not self._lost.is_set() and self._answers():
            return
        self.close()
        # Disconnect now: else Ray ends this process once the GCS has been away for 60 s.
        ray.shutdown()
        raise ClusterLost(self._address, self.name)

    def _watch(self) -> None:
        while not self._done.wait(self.every):
            if self._answers():
                continue
            self._lost.set()
            if not self._done.wait(self.grace):  # Tune's loop did not raise: it is stuck
                self.on_stuck(ClusterLost(self._address, self.name))
            return

    def _answers(self) -> bool:
        # A plain TCP connection first: Ray's own client may wait out its reconnection
        # timeout (60 s, then Ray ends the process) on a GCS that is gone.
        host, _, port = self._address.rpartition(":")
        try:
            socket.create_connection((host, int(port)), timeout=min(self.timeout, 3.0)).close()
        except (OSError, ValueError):
            return False
        # ray.init sets it; Ray's Worker class does not declare it
        gcs = ray._private.worker.global_worker.gcs_client  # type: ignore[attr-defined]
        try:
            return all(gcs.check_alive([self._node], timeout=self.timeout))
        except Exception:  # Ray's RpcError once its retries to the GCS time out
            return False


def exit_lost(lost: ClusterLost) -> None:
    """Say that the cluster is gone and end this process (its main thread is stuck in Ray)."""
    print(f"rlnas: {lost}", file=sys.stderr, flush=True)
    os._exit(1)
