"""Shorter waits in Ray Tune's function trainables, which cost each child a fixed delay.

A Tune worker fetches a child's results from the thread running it with waits of 0.2 s
(``ray.train._internal.session._RESULT_FETCH_TIMEOUT``): the wait after a child's last report
is spent before the worker can take the next child. Waits of 10 ms instead cost the worker
nothing noticeable while a child trains and save up to about 0.1 s per child with Ray Tune 2.60
(benchmarks/RESULTS.md, orchestration overhead). Where Ray names the setting differently,
nothing changes.
"""

from __future__ import annotations

__all__ = ["RESULT_WAIT_SECONDS", "shorten_result_waits"]

RESULT_WAIT_SECONDS = 0.01


def shorten_result_waits() -> None:
    """In a Tune worker: fetch results with waits of `RESULT_WAIT_SECONDS`."""
    try:
        from ray.train._internal import session
    except ImportError:  # another Ray layout: keep its own waits
        return
    if isinstance(getattr(session, "_RESULT_FETCH_TIMEOUT", None), (int, float)):
        session._RESULT_FETCH_TIMEOUT = RESULT_WAIT_SECONDS
