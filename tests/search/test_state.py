"""The search state file: written whole or not at all, read back as it was written."""

from __future__ import annotations

import os

import pytest
import torch

from search.state import StateFile, read_state, state_path


def test_state_round_trips_and_is_replaced_whole(tmp_path):
    path = state_path(tmp_path / "ray", "run1")
    assert path == tmp_path / "searches" / "run1" / "state.pt"
    content = {"searcher": {"weights": torch.arange(3.0)}, "log": {"children": []}}
    state = StateFile(path, lambda: content)
    state.save()
    first = read_state(path)
    assert torch.equal(first["searcher"]["weights"], torch.arange(3.0))
    assert first["pid"] == os.getpid() and first["format"] == 1
    content["searcher"]["weights"] = torch.zeros(3)
    state.save()
    assert torch.equal(read_state(path)["searcher"]["weights"], torch.zeros(3))


def test_a_write_cut_short_leaves_the_previous_state(tmp_path, monkeypatch):
    path = tmp_path / "state.pt"
    count = {"n": 0}
    state = StateFile(path, lambda: {"n": count["n"]})
    state.save()

    def killed(fd):
        raise KeyboardInterrupt  # as a signal arriving in the middle of the write

    monkeypatch.setattr(os, "fsync", killed)
    count["n"] = 1
    with pytest.raises(KeyboardInterrupt):
        state.save()
    assert read_state(path)["n"] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.pt"]  # no temporary left


def test_the_snapshot_is_taken_when_saved_not_when_written(tmp_path):
    queued = []
    live = {"told": 1}
    state = StateFile(tmp_path / "state.pt", lambda: live, defer=queued.append)
    state.save()
    live["told"] = 2  # the search goes on before the queued write happens
    queued.pop()()
    assert read_state(tmp_path / "state.pt")["told"] == 1


def test_other_files_are_not_taken_for_a_state(tmp_path):
    path = tmp_path / "state.pt"
    torch.save({"something": "else"}, path)
    with pytest.raises(ValueError, match="not a search state"):
        read_state(path)
