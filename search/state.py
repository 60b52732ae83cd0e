"""A search's saved state: everything `rlnas resume` continues from.

The source of truth is one file per search, ``runs/searches/<parent run id>/state.pt`` (beside
the Tune storage), replaced atomically (a temporary file, then a rename) after every suggestion
and every ended child, so a kill at any moment leaves the previous state whole. A copy goes to
the parent run's artifacts (``rlnas-state/state.pt``) at most every `UPLOAD_EVERY` seconds and
at the end, so a machine that shares only the tracking store can resume the search too (from
that copy: children ended since it was written are trained again).
"""

from __future__ import annotations

import io
import os
import socket
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

__all__ = ["ARTIFACT_DIR", "STATE_FORMAT", "StateFile", "read_state", "state_path"]

STATE_FORMAT = 1
ARTIFACT_DIR = "rlnas-state"
FILE_NAME = "state.pt"
UPLOAD_EVERY = 10.0
"""Seconds between copies of the state into the parent run."""


def state_path(storage: str | Path, parent_run_id: str) -> Path:
    """Where a search's state lives: ``<storage>/../searches/<parent run id>/state.pt``."""
    return Path(storage).parent / "searches" / parent_run_id / FILE_NAME


def _encode(state: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def read_state(path: str | Path) -> dict[str, Any]:
    """A state written by `StateFile` (plain data only: ``weights_only`` loading)."""
    state = torch.load(Path(path), weights_only=True)
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise ValueError(f"{path}: not a search state of format {STATE_FORMAT}")
    return state


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".state-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class StateFile:
    """Writes a search's state: `snapshot()` is taken at once, written in order after the
    tracking writes queued before it (`defer`), and copied into the parent run now and then.

    Args:
        path: The state file (see `state_path`).
        snapshot: Returns the state to save now (plain data).
        defer: Runs a function after the tracking writes already queued (default: at once).
        upload: Copies the state file into the parent run's artifacts.
    """

    def __init__(
        self,
        path: Path,
        snapshot: Callable[[], dict[str, Any]],
        defer: Callable[[Callable[[], None]], None] | None = None,
        upload: Callable[[Path], None] | None = None,
    ):
        self.path = path
        self.snapshot = snapshot
        self.defer = defer or (lambda fn: fn())
        self.upload = upload
        self._uploaded = 0.0
        self.writes = 0

    def save(self, final: bool = False) -> None:
        state = {
            "format": STATE_FORMAT,
            "written": time.time(),
            "pid": os.getpid(),
            "host": socket.gethostname(),
            **self.snapshot(),
        }
        data = _encode(state)  # now: the live objects change after this call
        upload = self.upload
        if not (final or time.monotonic() - self._uploaded >= UPLOAD_EVERY):
            upload = None
        if upload is not None:
            self._uploaded = time.monotonic()

        def write() -> None:
            _write_atomically(self.path, data)
            self.writes += 1
            if upload is not None:
                upload(self.path)

        self.defer(write)
