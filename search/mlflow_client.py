"""An `MlflowClient` whose writes ride out a tracking server's outage.

`TrackingClient` has `MlflowClient`'s methods. Writes (`WRITES`) are queued and performed in
order by one background thread, so a child's logging does not hold up the next child's start;
every other call waits its turn in the same queue, so it sees every earlier write. Against an
http(s) server, transient failures (connection refused or reset, timeouts, HTTP 5xx) are
retried with backoff until the server answers or has been unreachable for `outage_limit`
seconds; a write the server refuses is reported at the next call. Local stores (SQLite) are
written by that one thread too, without retries.
"""

from __future__ import annotations

import atexit
import copy
import inspect
import itertools
import logging
import os
import re
import shutil
import socket
import tempfile
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import requests
import urllib3.exceptions
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from search.config import ConfigError, SearchConfig

__all__ = [
    "DEFAULT_OUTAGE_LIMIT",
    "TrackingClient",
    "TrackingError",
    "TrackingUnavailable",
    "check_tracking",
    "is_transient",
    "quiet_downloads",
]

DEFAULT_OUTAGE_LIMIT = SearchConfig.tracking_outage
"""Seconds of unbroken failures a `TrackingClient` rides out before it gives up (a search's
`SearchConfig.tracking_outage`)."""
ATTEMPT_TIMEOUT = 10
"""Seconds one HTTP request may wait on the server (MLFLOW_HTTP_REQUEST_TIMEOUT)."""
CHECK_TIMEOUT = 5
WRITES = frozenset(
    {
        "log_batch", "log_metric", "log_param", "set_tag", "delete_tag", "set_terminated",
        "update_run", "set_experiment_tag", "delete_experiment_tag", "log_text", "log_dict",
        "log_artifact", "log_artifacts",
    }
)  # fmt: skip
"""Methods queued without waiting: they return nothing a caller needs."""
URGENT = frozenset({"create_run"})
"""Performed ahead of queued writes: a new run depends on none of them."""
RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
FIRST_DELAY, MAX_DELAY = 0.25, 5.0

log = logging.getLogger("rlnas.tracking")
_open: weakref.WeakSet[TrackingClient] = weakref.WeakSet()


class TrackingError(RuntimeError):
    """The tracking store refused a write, or cannot be reached: the search cannot go on."""


class TrackingUnavailable(TrackingError):
    """The tracking server stayed unreachable for longer than the client rides out."""


def quiet_downloads() -> None:
    """No MLflow progress bars on the console for artifact downloads (unless the environment
    asks for them)."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def _is_http(uri: str | None) -> bool:
    return urlparse(uri or "").scheme in ("http", "https")


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and the exceptions it was raised from or while handling."""
    seen = set()
    link: BaseException | None = exc
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        yield link
        link = link.__cause__ or link.__context__


def is_transient(exc: BaseException) -> bool:
    """Whether `exc`, from a call to an http(s) tracking server, may pass if retried."""
    for e in _chain(exc):
        if isinstance(e, requests.exceptions.SSLError):
            return False  # a certificate does not fix itself
        if isinstance(e, requests.HTTPError):  # artifact uploads raise these themselves
            return e.response is not None and e.response.status_code in RETRY_STATUS
        if isinstance(
            e,
            (
                requests.ConnectionError,
                requests.Timeout,
                requests.exceptions.RetryError,  # the server kept answering 5xx or 429
                requests.exceptions.ChunkedEncodingError,
                urllib3.exceptions.ProtocolError,
                urllib3.exceptions.TimeoutError,
                ConnectionError,
                TimeoutError,
                socket.gaierror,
            ),
        ):
            return True
    # a 5xx answer without a JSON body: MLflow raises it with no exception underneath
    return (
        isinstance(exc, MlflowException)
        and exc.__cause__ is None
        and exc.__context__ is None
        and exc.get_http_status_code() in RETRY_STATUS
    )


def _never_sent(exc: BaseException) -> bool:
    """Whether `exc` says the request never reached the server (so it was not applied)."""
    return any(
        isinstance(e, (urllib3.exceptions.ConnectTimeoutError, ConnectionRefusedError))
        for e in _chain(exc)
    )  # NewConnectionError and NameResolutionError are ConnectTimeoutErrors


def describe(exc: BaseException) -> str:
    """What went wrong, in a few words: ``connection refused``, ``HTTP 503``, ..."""
    chain = list(_chain(exc))
    for e in reversed(chain):  # the innermost cause says most
        if isinstance(e, ConnectionRefusedError):
            return "connection refused"
        if isinstance(e, socket.gaierror):
            return f"host not found: {e.strerror or e}"
        if isinstance(e, ConnectionResetError):
            return "connection reset"
        if isinstance(e, (TimeoutError, urllib3.exceptions.TimeoutError, requests.Timeout)):
            return "timed out"
        if isinstance(e, requests.exceptions.SSLError):
            return f"TLS error: {_first_line(e)}"
        if isinstance(e, urllib3.exceptions.ResponseError) and (
            code := re.search(r"too many (\d{3}) error", str(e))
        ):
            return f"HTTP {code.group(1)}"
        if isinstance(e, requests.HTTPError) and e.response is not None:
            return f"HTTP {e.response.status_code}"
        if isinstance(e, urllib3.exceptions.ProtocolError):
            return "connection closed by the server"
        # MLflow's own error for a response that came back, retries or not
        if code := re.search(r"failed with error code (\d{3}) != 200", str(e)):
            return f"HTTP {code.group(1)}"
    return _first_line(exc)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:300]


def check_tracking(uri: str, timeout: float = CHECK_TIMEOUT) -> None:
    """Raise `ConfigError` at once if `uri` is an http(s) tracking server that does not answer.

    Other stores (SQLite, a local folder) are not checked.
    """
    if not _is_http(uri):
        return
    from mlflow.utils.credentials import get_default_host_creds
    from mlflow.utils.rest_utils import http_request

    try:
        response = http_request(
            get_default_host_creds(uri),
            "/health",
            "GET",
            max_retries=0,
            timeout=timeout,
            raise_on_status=False,
        )
    except Exception as exc:
        reason = describe(exc)
    else:
        if response.status_code < 500:
            return  # it answers; whether it lets us in is for the first real call to say
        reason = f"HTTP {response.status_code}"
    raise ConfigError(
        f"tracking server {uri}: unreachable ({reason}); start it, or pass --tracking-uri "
        "sqlite:///runs/mlflow.db to record the search locally"
    )


def _configure_mlflow_http() -> None:
    """One HTTP attempt per call, quickly over: `TrackingClient` does the retrying.

    MLflow's defaults (7 retries with exponential backoff, 120 s per request) hold a call to a
    stopped server for minutes. `set_terminated` would also fetch the run again to print its
    address, from the writer thread, between the progress lines. Values the user set are kept.
    """
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(ATTEMPT_TIMEOUT))
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")


@dataclass
class _Call:
    name: str
    bound: inspect.BoundArguments | None = None
    fn: Callable[[], None] | None = None  # `after_writes`' function, instead of a method
    future: Future | None = None
    spool: Path | None = None
    maybe_applied: bool = False  # an earlier attempt may have reached the server


class TrackingClient:
    """`MlflowClient` with queued, ordered, retried writes; see the module's docstring.

    Args:
        tracking_uri, registry_uri: As for `MlflowClient`.
        outage_limit: Seconds of unbroken transient failures ridden out before
            `TrackingUnavailable`.
        search_name: Named in `TrackingUnavailable`'s advice on resuming.
    """

    def __init__(
        self,
        tracking_uri: str | None = None,
        registry_uri: str | None = None,
        *,
        outage_limit: float = DEFAULT_OUTAGE_LIMIT,
        search_name: str | None = None,
    ):
        if _is_http(tracking_uri):
            _configure_mlflow_http()
        self._client = MlflowClient(tracking_uri=tracking_uri, registry_uri=registry_uri)
        self.outage_limit = outage_limit
        self.search_name = search_name
        self._retrying = _is_http(self._client.tracking_uri)
        self._lock = threading.Condition()
        self._ordered: deque[_Call] = deque()
        self._urgent: deque[_Call] = deque()
        self._busy = False
        self._closed = False
        self._failure: TrackingError | None = None
        self._reported = False
        self._down_since: tuple[float, float] | None = None  # wall clock, monotonic
        self._spool_root: Path | None = None
        self._numbers = itertools.count()
        self._worker = threading.Thread(target=self._work, name="mlflow-writer", daemon=True)
        self._worker.start()
        _open.add(self)

    def __reduce__(self):
        # Ray Tune pickles the driver's callbacks and searcher with its experiment (for its own
        # restore, which rlnas does not use): a copy is a new client of the same store.
        return (
            _new_client,
            (self._client.tracking_uri, self._client._registry_uri, self.outage_limit,
             self.search_name),
        )  # fmt: skip

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        attr = getattr(self._client, name)
        if name.startswith("_") or not callable(attr):
            return attr

        def method(*args, **kwargs):
            return self._submit(name, args, kwargs)

        method.__name__ = name
        method.__doc__ = attr.__doc__
        # typeshed's functions lack the __signature__ that `inspect.signature` reads
        method.__signature__ = inspect.signature(attr)  # type: ignore[attr-defined]
        return method

    @property
    def pending(self) -> int:
        """Calls queued or in progress."""
        with self._lock:
            return len(self._ordered) + len(self._urgent) + self._busy

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued write is performed; False if `timeout` s passed first.

        Raises the `TrackingError` that stopped the writes, if one did.
        """
        if threading.current_thread() is self._worker:
            return True  # from an `after_writes` function: the writes before it are done
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while (self._ordered or self._urgent or self._busy) and self._failure is None:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._lock.wait(left)
            self._raise_failure()
        return True

    def after_writes(self, fn: Callable[[], None]) -> None:
        """Call `fn` (on the writer thread) once every write queued so far is performed.

        Writes `fn` makes are queued after it; an exception it raises is logged, not raised.
        """
        with self._lock:
            self._raise_failure()
            direct = self._closed or threading.current_thread() is self._worker
            if not direct:
                self._ordered.append(_Call("after_writes", fn=fn))
                self._lock.notify_all()
        if direct:
            _call_quietly(fn)

    def close(self) -> None:
        """Perform what is queued, then stop the writer; later calls are made directly.

        Raises a `TrackingError` that stopped the writes and was not raised to a caller yet.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._lock.notify_all()
        self._worker.join()
        _open.discard(self)
        if self._spool_root is not None:
            shutil.rmtree(self._spool_root, ignore_errors=True)
        with self._lock:
            if not self._reported:
                self._raise_failure()

    # -- callers' side ---------------------------------------------------------------------

    def _submit(self, name: str, args: tuple, kwargs: dict) -> Any:
        bound = inspect.signature(getattr(self._client, name)).bind(*args, **kwargs)
        _fix_times(name, bound.arguments)
        with self._lock:
            self._raise_failure()
            closed = self._closed
        on_writer = threading.current_thread() is self._worker
        if closed or (on_writer and name not in WRITES):
            # waiting for the writer from its own thread (an `after_writes` function) would hang
            return self._perform(_Call(name, bound))
        call = _Call(name, bound, spool=self._copy_inputs(name, bound.arguments))
        if name not in WRITES:
            call.future = Future()
        with self._lock:
            self._raise_failure()
            (self._urgent if name in URGENT else self._ordered).append(call)
            self._lock.notify_all()
        return None if call.future is None else call.future.result()

    def _raise_failure(self) -> None:
        if self._failure is not None:
            self._reported = True
            raise self._failure.with_traceback(None)

    def _copy_inputs(self, name: str, arguments: dict[str, Any]) -> Path | None:
        """Copy what the caller may change or delete once the call returns; returns the spool
        folder holding copies of the files to upload, if any."""
        if name == "log_dict":
            arguments["dictionary"] = copy.deepcopy(arguments["dictionary"])
        elif name == "log_batch":
            for key in ("metrics", "params", "tags"):
                if key in arguments:
                    arguments[key] = list(arguments[key])
        elif name == "log_artifact":
            source = Path(arguments["local_path"])
            spool = self._new_spool()
            arguments["local_path"] = str(shutil.copy2(source, spool / source.name))
            return spool
        elif name == "log_artifacts":
            spool = self._new_spool()
            shutil.copytree(arguments["local_dir"], spool, dirs_exist_ok=True)
            arguments["local_dir"] = str(spool)
            return spool
        return None

    def _new_spool(self) -> Path:
        if self._spool_root is None:
            self._spool_root = Path(tempfile.mkdtemp(prefix="rlnas-mlflow-spool-"))
        path = self._spool_root / f"{next(self._numbers):06d}"
        path.mkdir()
        return path

    # -- the writer thread -----------------------------------------------------------------

    def _work(self) -> None:
        while True:
            with self._lock:
                while not (self._urgent or self._ordered or self._closed):
                    self._lock.wait()
                if not (self._urgent or self._ordered):
                    return
                call = (self._urgent or self._ordered).popleft()
                self._busy = True
            if call.fn is not None:
                _call_quietly(call.fn)
                self._settle(call)
                continue
            try:
                result = self._perform(call)
            except BaseException as exc:
                self._settle(call, error=exc)
            else:
                self._settle(call, result=result)

    def _settle(self, call: _Call, result: Any = None, error: BaseException | None = None):
        """Hand `call`'s outcome to its caller; a queued write that failed stops the rest."""
        if call.spool is not None:
            shutil.rmtree(call.spool, ignore_errors=True)
        with self._lock:
            self._busy = False
            if isinstance(error, TrackingError) or (error is not None and call.future is None):
                self._fail(call, error)
            if call.future is not None:
                if error is None:
                    call.future.set_result(result)
                else:
                    call.future.set_exception(error)
                    self._reported = self._reported or error is self._failure
            self._lock.notify_all()

    def _fail(self, call: _Call, error: BaseException) -> None:
        """Stop every write: the queue is dropped and each later call raises `error`."""
        if not isinstance(error, TrackingError):
            error = TrackingError(
                f"tracking {self._client.tracking_uri}: {call.name} failed: {_first_line(error)}"
            )
        self._failure = self._failure or error
        dropped = list(self._urgent) + list(self._ordered)
        self._urgent.clear()
        self._ordered.clear()
        for other in dropped:
            if other.spool is not None:
                shutil.rmtree(other.spool, ignore_errors=True)
            if other.future is not None:
                other.future.set_exception(self._failure)
                self._reported = True

    def _perform(self, call: _Call) -> Any:
        """`call` on the MLflow client, retried while the server is transiently unavailable."""
        delay = FIRST_DELAY
        while True:
            try:
                result = self._attempt(call)
            except Exception as exc:
                if not (self._retrying and is_transient(exc)):
                    raise
                call.maybe_applied = call.maybe_applied or not _never_sent(exc)
                self._note_outage(exc)
                time.sleep(delay)
                delay = min(delay * 2, MAX_DELAY)
            else:
                self._note_answer()
                return result

    def _attempt(self, call: _Call) -> Any:
        bound = call.bound
        assert bound is not None  # a method's call (an `after_writes` function never gets here)
        if call.name == "create_run" and call.maybe_applied:
            existing = self._created_run(bound.arguments)
            if existing is not None:
                return existing
        return getattr(self._client, call.name)(*bound.args, **bound.kwargs)

    def _created_run(self, arguments: dict[str, Any]):
        """The run an earlier attempt of this `create_run` made, if the server made it."""
        runs = self._client.search_runs(
            [arguments["experiment_id"]],
            f"attributes.start_time = {arguments['start_time']}",
        )
        tags = {k: str(v) for k, v in (arguments.get("tags") or {}).items()}
        for run in runs:
            if arguments.get("run_name") not in (None, run.info.run_name):
                continue
            if all(run.data.tags.get(k) == v for k, v in tags.items()):
                return run
        return None

    def _note_outage(self, exc: BaseException) -> None:
        """Remember when the failures began; past `outage_limit`, raise `TrackingUnavailable`."""
        if self._down_since is None:
            self._down_since = (time.time(), time.monotonic())
            log.warning(
                "rlnas: tracking server %s unreachable (%s); retrying for up to %s, "
                "keeping the writes",
                self._client.tracking_uri,
                describe(exc),
                _duration(self.outage_limit),
            )
            return
        wall, since = self._down_since
        if time.monotonic() - since > self.outage_limit:
            name = self.search_name or "NAME"
            raise TrackingUnavailable(
                f"tracking server {self._client.tracking_uri}: unreachable since "
                f"{time.strftime('%H:%M:%S', time.localtime(wall))} ({describe(exc)}), longer "
                f"than {_duration(self.outage_limit)}; the search stopped: resume it with "
                f"`rlnas resume {name}` once the server is back"
            ) from None

    def _note_answer(self) -> None:
        if self._down_since is not None:
            log.warning(
                "rlnas: tracking server %s answers again after %s",
                self._client.tracking_uri,
                _duration(time.monotonic() - self._down_since[1]),
            )
            self._down_since = None


def _fix_times(name: str, arguments: dict[str, Any]) -> None:
    """The times MLflow would take when the call is performed, taken when it is made."""
    if name == "create_run" and arguments.get("start_time") is None:
        arguments["start_time"] = int(time.time() * 1000)  # also finds the run again
    elif name == "set_terminated" and arguments.get("end_time") is None:
        arguments["end_time"] = int(time.time() * 1000)


def _call_quietly(fn: Callable[[], None]) -> None:
    try:
        fn()
    except Exception as exc:
        log.error("rlnas: after the tracking writes, %s failed: %s", fn, _first_line(exc))


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min"


@atexit.register
def _close_open_clients() -> None:
    """Writes still queued when the interpreter exits are performed, not dropped."""
    for client in list(_open):
        try:
            client.close()
        except TrackingError as exc:
            log.error("%s", exc)
        except KeyboardInterrupt:
            log.error("rlnas: interrupted: %d tracking writes not recorded", client.pending)


def _new_client(tracking_uri, registry_uri, outage_limit, search_name) -> TrackingClient:
    return TrackingClient(
        tracking_uri, registry_uri, outage_limit=outage_limit, search_name=search_name
    )
