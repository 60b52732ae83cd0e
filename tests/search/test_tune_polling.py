"""Tune workers fetch a child's results with short waits (the installed Ray's setting)."""

from __future__ import annotations

from ray.train._internal import session

from search.tune_polling import RESULT_WAIT_SECONDS, shorten_result_waits


def test_the_installed_ray_has_the_setting_and_it_is_shortened(monkeypatch):
    assert isinstance(session._RESULT_FETCH_TIMEOUT, float)  # the name this Ray uses
    monkeypatch.setattr(session, "_RESULT_FETCH_TIMEOUT", 0.2)  # Ray's own default
    shorten_result_waits()
    assert session._RESULT_FETCH_TIMEOUT == RESULT_WAIT_SECONDS
