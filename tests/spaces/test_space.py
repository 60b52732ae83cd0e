"""The space language: round trips, masks and counts over generated spaces; clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spaces import Space, SpaceError, list_spaces, load_space

VALUES = st.one_of(st.integers(-3, 300), st.sampled_from(["a", "b", "relu", "none"]), st.booleans())


@st.composite
def space_dicts(draw):
    """A space with top-level decisions, a repeat block, and `when` clauses on earlier values."""
    decisions: list[dict] = []
    earlier: dict[str, list] = {}

    def choice_list():
        return draw(st.lists(VALUES, min_size=1, max_size=4, unique_by=lambda v: (type(v), v)))

    def maybe_when(pool: dict[str, list]):
        if not pool or not draw(st.booleans()):
            return None
        ref = draw(st.sampled_from(sorted(pool)))
        values = draw(st.lists(st.sampled_from(pool[ref]), min_size=1, max_size=2))
        form = draw(st.sampled_from(["value", "list", "not"]))
        if form == "value":
            return {ref: values[0]}
        return {ref: values} if form == "list" else {ref: {"not": values}}

    for i in range(draw(st.integers(0, 2))):
        item = {"name": f"top{i}", "choices": choice_list()}
        if (when := maybe_when(earlier)) is not None:
            item["when"] = when
        decisions.append(item)
        earlier[item["name"]] = item["choices"]
    counts = draw(st.lists(st.integers(0, 3), min_size=1, max_size=3, unique=True))
    local: dict[str, list] = {}
    inner = []
    for j in range(draw(st.integers(1, 3))):
        item = {"name": f"d{j}", "choices": choice_list()}
        if (when := maybe_when({**earlier, **local})) is not None:
            item["when"] = when
        inner.append(item)
        local[item["name"]] = item["choices"]
    decisions.append({"repeat": "layers", "count": counts, "decisions": inner})
    earlier["layers"] = counts
    tail = {"name": "tail", "choices": choice_list()}
    if (when := maybe_when(earlier)) is not None:
        tail["when"] = when
    decisions.append(tail)
    return {"family": "mlp", "decisions": decisions}


def walk(space: Space, picks: list[int]) -> list[int]:
    """Follow the mask, choosing legal actions by the drawn numbers."""
    actions: list[int] = []
    i = 0
    while not space.is_complete(actions):
        legal = space.legal_actions(actions)
        mask = space.action_mask(actions)
        assert mask.shape == (space.max_choices,)
        assert list(np.flatnonzero(mask)) == legal and legal
        actions.append(legal[picks[i % len(picks)] % len(legal)])
        i += 1
    return actions


def enumerate_all(space: Space, prefix: tuple[int, ...] = ()):
    if space.is_complete(prefix):
        yield prefix
        return
    for a in space.legal_actions(prefix):
        yield from enumerate_all(space, (*prefix, a))


@settings(max_examples=150, deadline=None)
@given(space_dicts(), st.lists(st.integers(0, 10), min_size=1, max_size=20))
def test_round_trip_and_mask_legality(data, picks):
    space = Space.from_dict(data)
    actions = walk(space, picks)
    arch = space.decode(actions)
    assert json.loads(json.dumps(arch)) == arch
    assert space.encode(arch) == actions
    assert space.key(arch) == space.key(json.loads(json.dumps(arch)))
    assert space.legal_actions(actions) == [] and not space.action_mask(actions).any()
    if (slot := space.next_slot(actions[:-1])) is not None:
        with pytest.raises(SpaceError):
            space.decode([*actions[:-1], len(slot.choices)])
    with pytest.raises(SpaceError):
        space.decode([*actions, 0])


@settings(max_examples=100, deadline=None)
@given(space_dicts(), st.lists(st.integers(0, 10), min_size=1, max_size=20))
def test_a_walk_one_action_at_a_time_meets_the_decisions_of_each_prefix(data, picks):
    space = Space.from_dict(data)
    actions = walk(space, picks)
    stepwise = space.walk()
    for t, action in enumerate(actions):
        slot = stepwise.next_slot()
        assert slot == space.next_slot(actions[:t])
        assert (space.slot_mask(slot) == space.action_mask(actions[:t])).all()
        assert stepwise.take(action) == slot
    assert stepwise.next_slot() is None
    assert space.slots_of(actions) == [space.next_slot(actions[:t]) for t in range(len(actions))]


@settings(max_examples=80, deadline=None)
@given(space_dicts())
def test_cardinality_matches_enumeration(data):
    space = Space.from_dict(data)
    everything = list(enumerate_all(space))
    assert space.cardinality() == len(everything)
    keys = {space.key(space.decode(a)) for a in everything}
    assert len(keys) == len(everything)


@settings(max_examples=60, deadline=None)
@given(space_dicts(), st.integers(0, 2**32 - 1))
def test_sample_is_legal_and_seeded(data, seed):
    space = Space.from_dict(data)
    a = space.sample(np.random.default_rng(seed))
    assert space.encode(space.decode(a)) == a
    assert a == space.sample(np.random.default_rng(seed))


@pytest.mark.parametrize("name", list_spaces())
def test_builtin_spaces_load(name):
    space = load_space(name)
    assert space.cardinality() > 1
    assert name in space.describe()


def test_rnn_evolved_matches_the_course_space():
    space = load_space("rnn-evolved")
    names = {s.name: s.choices for s in space.slots}
    assert names["cell"] == ("rnn", "gru", "lstm")
    assert names["layers"] == (1, 2, 3, 4, 5)
    assert names["layers.4.units"] == (0, 40, 80, 120, 160, 200)
    assert names["layers.0.activation"] == ("tanh", "relu", "sigmoid")
    # 0 units: the layer is skipped, so it takes no activation
    skipped = space.decode([0, 0, 0])
    assert skipped == {"cell": "rnn", "layers": [{"units": 0}]}
    # per layer 1 + 5*3 = 16 configurations, 3 cells, depth 1-5
    assert space.cardinality() == 3 * sum(16**d for d in range(1, 6))


def test_cnn_space_has_none_head():
    space = load_space("cnn")
    assert "none" in next(s for s in space.slots if s.name == "head").choices


def test_booleans_and_integers_stay_apart():
    space = Space.from_dict({"family": "mlp", "decisions": [{"name": "x", "choices": [1, True]}]})
    assert space.encode({"x": True}) == [1] and space.encode({"x": 1}) == [0]


@pytest.mark.parametrize(
    ("text", "path", "expected"),
    [
        ("family: cnn\n", "decisions", "missing"),
        ("decisions: []\nfamily: cnn\n", "decisions", "non-empty list"),
        ("family: cnn\ndecisions:\n  - {name: a}\n", "decisions[0].choices", "non-empty list"),
        (
            "family: cnn\ndecisions:\n  - {name: a, choices: [1], colour: 2}\n",
            "decisions[0].colour",
            "unknown key",
        ),
        (
            "family: cnn\ndecisions:\n  - {name: a, choices: [1, 1]}\n",
            "decisions[0].choices[1]",
            "duplicate choice",
        ),
        (
            "family: cnn\ndecisions:\n  - {name: a, choices: [1], when: {b: 1}}\n",
            "decisions[0].when.b",
            "no earlier decision",
        ),
        (
            "family: cnn\ndecisions:\n  - {name: a, choices: [1]}\n  - {name: b, choices: [2], "
            "when: {a: 3}}\n",
            "decisions[1].when.a",
            "not a choice of a",
        ),
        (
            "family: cnn\ndecisions:\n  - {repeat: l, count: [0, -1], decisions: "
            "[{name: a, choices: [1]}]}\n",
            "decisions[0].count",
            "layer counts",
        ),
        (
            "family: cnn\ndecisions:\n  - {repeat: l, count: [1], decisions: [{repeat: m}]}\n",
            "decisions[0].decisions[0].repeat",
            "cannot be nested",
        ),
        ("family: nosuch\ndecisions:\n  - {name: a, choices: [1]}\n", "family", "unknown family"),
        ("family: cnn\ndecisions: [\n", "", "not valid YAML at line"),
    ],
)
def test_bad_space_files_name_file_path_and_expectation(tmp_path, text, path, expected):
    file = tmp_path / "bad.yaml"
    file.write_text(text)
    with pytest.raises(SpaceError) as info:
        load_space(file)
    message = str(info.value)
    assert message.startswith(str(file))
    assert info.value.path == path
    assert expected in message
    assert "\n" not in message


def test_unknown_space_name_lists_builtins():
    with pytest.raises(SpaceError, match="built-in: .*cnn"):
        load_space("no-such-space")


def test_encode_rejects_foreign_architectures():
    space = load_space("mlp")
    arch = space.decode(space.sample(np.random.default_rng(0)))
    with pytest.raises(SpaceError, match="not a choice"):
        space.encode({**arch, "layers": [{**arch["layers"][0], "width": 7}]})
    with pytest.raises(SpaceError, match="not a decision"):
        space.encode({**arch, "colour": "red"})
    with pytest.raises(SpaceError, match="missing"):
        space.encode({})
