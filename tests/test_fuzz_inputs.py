"""Bad input, fuzzed: malformed space, config and data files each give one clear error.

Valid documents (the built-in spaces, typical search configs, small data sets) are mutated:
values of the wrong type, unknown keys at any depth, dropped keys, broken `when` references,
huge counts and choice lists, non-mapping roots, invalid YAML, undecodable bytes, empty files.
Each is written to a file and loaded through the public entry point. It either loads (some
mutations are harmless; what loads must then work) or raises the project's own error as one
line naming the file and, for a document that parses, the key at fault. Any other exception
fails. Each run draws 1,100 space documents, 450 config files and 450 data files.
"""

from __future__ import annotations

import copy
import io
import json
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from search.config import ConfigError, SearchConfig
from spaces import BUILTIN_DIR, Space, SpaceError, load_space
from trainers import Task, TaskError, load_task

ROOT = Path(__file__).resolve().parents[1]


def fuzz(examples: int) -> Callable:
    return settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
            HealthCheck.filter_too_much,
        ],
    )


def assert_mostly_rejected(outcomes: list[bool], examples: int, share: float = 0.7) -> None:
    """Every example ran, and most of them were malformed (the strategies do break things)."""
    assert len(outcomes) >= examples
    assert sum(outcomes) >= share * len(outcomes), f"{sum(outcomes)} of {len(outcomes)} rejected"


def assert_one_line(message: str, file: Path) -> None:
    assert str(file) in message, message
    assert "\n" not in message and "\r" not in message, message
    assert len(message) <= 700, message


# ---------------------------------------------------------------- shared strategies

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-10, 10),
    st.integers(),
    st.sampled_from([10**6, 10**12, 2**63, -(2**63), 10**100]),
    st.floats(),
    st.text(max_size=12),
    st.sampled_from(["", " ", "none", "relu", "layers", "a.b", "1x", "not", "in", "\n", "x" * 300]),
    st.dates(),
)
KEYS = st.one_of(
    st.sampled_from(["colour", "Name", "choice", "counts", "decision", "when_", "default"]),
    st.text(min_size=1, max_size=10),
    st.integers(-5, 5),
    st.booleans(),
    st.none(),
)
JUNK = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(KEYS, inner, max_size=3)),
    max_leaves=6,
)

# Pieces that break YAML (or stretch what it can express) when spliced into a document.
YAML_BREAKERS = [
    "[", "]", "{", "}", ":", ": :", "- ", "\t", "&a ", "*a", "*nope ", "!", "'", '"', "#", "|",
    ">", "\n  ", "\n---\n", "\n...\n", "? ", ",", "@", "`", "<<: 1\n", "<<: *a\n", "~", "\\",
    "!!python/object:os.system ", "!!python/name:os.system ", "%YAML 1.1\n", "!!int abc",
    "!!float x", "2001-02-30", "!!binary '#'", "!!timestamp x", "!!bool x", "&x [*x]",
    "!!set {a, b}", "!!omap [a]", "\x00", "\x07", "\ufeff", "\u2028", "key: value\n",
    "!!str [1]", "!!int 9" + "9" * 5000,
]  # fmt: skip
BAD_BYTES = [
    b"\xff",
    b"\xfe\xff",
    b"\xc3",
    b"\xed\xa0\x80",
    b"\x80",
    b"\xf4\x90\x80\x80",
    b"\xc0\xaf",
]
WHOLE_FILES = [
    b"",
    b" \n",
    b"# only a comment\n",
    b"---\n",
    b"~\n",
    b"[]\n",
    b"42\n",
    b"- a\n- b\n",
]
WHOLE_FILES += [b"'text'\n", b"{}\n", b"\x00", b"\xef\xbb\xbf", b"...\n", b"!!binary aGk=\n"]


def bomb(levels: int = 9) -> str:
    """A flow list of anchored lists, each ten aliases of the last: 10**levels leaves."""
    parts = ["&l0 [x, x, x, x, x, x, x, x, x, x]"]
    parts += [f"&l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, levels)]
    return f"[{', '.join(parts)}]"


@st.composite
def broken_bytes(draw: st.DrawFn, text: str, tricks: list[str]) -> bytes:
    """`text` broken at the level of characters and bytes (or replaced by a whole bad file)."""
    data = text.encode()
    at = draw(st.integers(0, len(data)))
    kind = draw(st.integers(0, 8))
    if kind == 0:
        piece = draw(st.one_of(st.sampled_from(YAML_BREAKERS), st.text(max_size=4))).encode()
        return data[:at] + piece + data[at:]
    if kind == 1:
        return data[:at] + draw(st.sampled_from(BAD_BYTES)) + data[at:]
    if kind == 2:
        return data[:at]
    if kind == 3:
        end = draw(st.integers(at, len(data)))
        return data[:at] + data[end:]
    if kind == 4:
        return draw(st.binary(max_size=64))
    if kind == 5:
        return draw(st.sampled_from(WHOLE_FILES))
    if kind == 6:
        other = draw(st.sampled_from(["utf-16", "utf-32", "latin-1", "utf-8-sig", "cp500"]))
        return text.encode(other, errors="replace")
    if kind == 7:
        opener, closer = draw(st.sampled_from([("[", "]"), ("{a: ", "}"), ("- ", "")]))
        # PyYAML scans nested flow lists in quadratic time: deep ones cost seconds
        depth = draw(st.sampled_from([50, 300] if opener == "[" else [50, 1200, 20000]))
        return (opener * depth + "1" + closer * depth).encode()
    return draw(st.sampled_from(tricks)).encode()


# libyaml where installed: the tests' own reading and writing of documents stays quick
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def dump(doc: Any) -> bytes:
    return yaml.dump(doc, Dumper=DUMPER, sort_keys=False, allow_unicode=True).encode()


def nodes(tree: Any, path: tuple = ()) -> Iterator[tuple[tuple, Any]]:
    """Every (path, node) of a document, the root first."""
    yield path, tree
    if isinstance(tree, dict):
        children = list(tree.items())
    elif isinstance(tree, list):
        children = list(enumerate(tree))
    else:
        children = []
    for key, child in children:
        yield from nodes(child, (*path, key))


def put(tree: Any, path: tuple, value: Any) -> Any:
    """`tree` with the node at `path` replaced by `value`."""
    if not path:
        return value
    parent = tree
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    return tree


def wrong_type(draw: st.DrawFn, doc: Any) -> Any:
    path, _ = draw(st.sampled_from(list(nodes(doc))))
    return put(doc, path, draw(JUNK))


def unknown_key(draw: st.DrawFn, doc: Any) -> Any:
    mappings = [node for _, node in nodes(doc) if isinstance(node, dict)]
    if not mappings:
        return wrong_type(draw, doc)
    draw(st.sampled_from(mappings))[draw(KEYS)] = draw(JUNK)
    return doc


def drop_key(draw: st.DrawFn, doc: Any) -> Any:
    mappings = [node for _, node in nodes(doc) if isinstance(node, dict) and node]
    if not mappings:
        return wrong_type(draw, doc)
    target = draw(st.sampled_from(mappings))
    del target[draw(st.sampled_from(list(target)))]
    return doc


def not_a_mapping(draw: st.DrawFn, doc: Any) -> Any:
    inside = [node for _, node in nodes(doc)]
    return draw(st.one_of(st.lists(JUNK, max_size=3), SCALARS, st.sampled_from(inside)))


def plain_keys(tree: Any, budget: int = 20000) -> bool:
    """Whether every key is text that an error message shows as it is (False for a document
    too big to look through, or one that holds itself)."""
    stack: list[tuple[Any, frozenset[int]]] = [(tree, frozenset())]
    while stack:
        node, above = stack.pop()
        budget -= 1
        if budget < 0 or id(node) in above:
            return False
        if isinstance(node, dict):
            if not all(
                isinstance(k, str) and k.isprintable() and 0 < len(k) <= 40 and ":" not in k
                for k in node
            ):
                return False
            children = list(node.values())
        elif isinstance(node, list):
            children = node
        else:
            continue
        stack += [(child, above | {id(node)}) for child in children]
    return True


def parsed(data: bytes) -> Any:
    """The document the file holds, or a marker when it is not UTF-8 YAML."""
    try:
        return yaml.load(data.decode("utf-8"), Loader=LOADER)
    except Exception:  # noqa: BLE001  (any parse failure means "no document")
        return NotImplemented


# ---------------------------------------------------------------- space files

SPACE_FILES = sorted(BUILTIN_DIR.glob("*.yaml")) + sorted((ROOT / "benchmarks").glob("*.yaml"))
SPACE_TEXTS = [p.read_text() for p in SPACE_FILES] + [
    """\
family: mlp
decisions:
  - {name: kind, choices: [wide, deep]}
  - repeat: layers
    count: [0, 1, 2]
    when: {kind: {in: [deep]}}
    decisions:
      - {name: width, choices: [0, 16, 32]}
      - {name: activation, choices: [relu, tanh], when: {width: {not: 0}}}
      - {name: norm, choices: [true, false], when: {kind: wide, activation: relu}}
  - {name: head, choices: [none, 8], when: {layers: [1, 2]}}
"""
]
SPACE_DOCS = [yaml.safe_load(text) for text in SPACE_TEXTS]
SPACE_REQUIRED = ("family", "decisions", "name", "choices", "repeat", "count")
BIG = ", ".join(map(str, range(1000)))
# Inputs that broke loading, each with what loading now says (None: it loads, and works).
SPACE_REGRESSIONS = [
    ("undecodable", b"family: mlp\xff\ndecisions: []\n", "not UTF-8 text (byte 11)"),
    ("bad-date", b"family: mlp\ndecisions: [{name: a, choices: [2001-02-30]}]\n", "day is out"),
    ("bad-bool", b"family: !!bool x\n", "not valid YAML: a malformed tagged value"),
    ("bad-timestamp", b"family: !!timestamp x\n", "not valid YAML: a malformed tagged value"),
    ("deep", b"- " * 5000 + b"1", "nested too deeply"),
    (
        "huge-count",  # unrolled a trillion layers
        b"family: mlp\ndecisions:\n- {repeat: l, count: [1000000000000], decisions: "
        b"[{name: a, choices: [1]}]}\n",
        "decisions[0].count: 1000000000000 layers (expected at most 500)",
    ),
    (
        "huge-choices",  # a quadratic duplicate check
        b"family: mlp\ndecisions: [{name: a, choices: [%s]}]\n"
        % ", ".join(map(str, range(2000))).encode(),
        "decisions[0].choices: 2000 choices (expected at most 1000)",
    ),
    (
        "too-many-decisions",
        b"family: mlp\ndecisions:\n- {repeat: l, count: [1, 300], decisions: ["
        + b", ".join(b"{name: d%d, choices: [0, 1]}" % i for i in range(7))
        + b"]}\n",
        "decisions[0].count: 300 layers of 7 decisions unroll the space to 2101 decisions",
    ),
    (
        "long-space",  # counting recursed once per decision
        b"family: mlp\ndecisions:\n- {repeat: l, count: [400], decisions: [{name: a, choices: "
        b"[1, 2]}, {name: b, choices: [1, 2]}, {name: c, choices: [1, 2]}]}\n",
        None,
    ),
    (
        "10^4500-architectures",  # too many digits for describe() to print
        b"family: mlp\ndecisions:\n- {repeat: l, count: [500], decisions: [%s]}\n"
        % ", ".join(f"{{name: {n}, choices: [{BIG}]}}" for n in "abc").encode(),
        None,
    ),
    (
        "nan-choices",  # loaded, then no architecture encoded
        b"family: mlp\ndecisions: [{name: a, choices: [.nan, .nan]}]\n",
        "decisions[0].choices[0]: nan (expected a finite number)",
    ),
    (
        "infinite-choices",
        b"family: mlp\ndecisions: [{name: a, choices: [1, .inf]}]\n",
        "decisions[0].choices[1]: inf (expected a finite number)",
    ),
    (
        "description-list",  # was turned into text silently
        b"family: mlp\ndescription: [1, 2]\ndecisions: [{name: a, choices: [1]}]\n",
        "description: expected a string",
    ),
    (
        "description-bomb",  # str() of a billion aliases
        f"family: mlp\ndescription: {bomb()}\ndecisions: [{{name: a, choices: [1]}}]\n".encode(),
        "description: expected a string",
    ),
    (
        "when-bomb",  # repr() of a billion aliases in the message
        f"family: mlp\ndecisions:\n- {{name: a, choices: [1]}}\n- {{name: b, choices: [1], "
        f"when: {{a: [{bomb()}]}}}}\n".encode(),
        "decisions[1].when.a: [[...], [...], [...], [...], [...], [...], [...], [...], [...]]",
    ),
    (
        "key-newline",  # a two-line message
        b'family: mlp\ndecisions: [{name: a, choices: [1], "x\\ny": 1}]\n',
        "decisions[0].'x\\ny': unknown key",
    ),
    (
        "when-empty",  # a decision that could never be taken
        b"family: mlp\ndecisions: [{name: a, choices: [1]}, {name: b, choices: [1], when: "
        b"{a: []}}]\n",
        "decisions[1].when.a: an empty list (expected at least one value)",
    ),
    (
        "duplicate-key",  # the second `name` won silently
        b"family: mlp\ndecisions:\n  - name: a\n    name: b\n    choices: [1]\n",
        "not valid YAML at line 4: found duplicate key 'name'",
    ),
    ("self-list", b"family: mlp\ndecisions: &d [*d]\n", "decisions[0]: expected a mapping"),
    (
        "self-when",
        b"family: mlp\ndecisions:\n  - &x {name: a, choices: [1], when: *x}\n",
        "decisions[0].when.name: refers to no earlier decision",
    ),
    (
        "merge",
        b"<<: {family: mlp}\ndecisions: [{name: a, choices: [1]}, {<<: {name: b}, choices: [2]}]\n",
        None,
    ),
    ("list-key", b"? [family]\n: mlp\ndecisions: []\n", "found unhashable key"),
]
SPACE_TRICKS = [data.decode("utf-8", "replace") for _, data, _ in SPACE_REGRESSIONS]


def decision_items(doc: Any) -> list[tuple[tuple, dict]]:
    """(path, mapping) of every decision, per-layer ones included."""
    found = []
    if isinstance(doc, dict) and isinstance(doc.get("decisions"), list):
        for i, item in enumerate(doc["decisions"]):
            if isinstance(item, dict):
                found.append((("decisions", i), item))
                if isinstance(item.get("decisions"), list):
                    found += [
                        (("decisions", i, "decisions", j), sub)
                        for j, sub in enumerate(item["decisions"])
                        if isinstance(sub, dict)
                    ]
    return found


def names_and_values(doc: Any) -> tuple[list, list]:
    items = [item for _, item in decision_items(doc)]
    names = [n for it in items for n in (it.get("name"), it.get("repeat")) if isinstance(n, str)]
    values = [
        v
        for it in items
        for key in ("choices", "count")
        if isinstance(it.get(key), list)
        for v in it[key]
    ]
    return names or ["x"], values or [0]


def break_when(draw: st.DrawFn, doc: Any) -> Any:
    items = decision_items(doc)
    if not items:
        return unknown_key(draw, doc)
    _, item = draw(st.sampled_from(items))
    names, values = names_and_values(doc)
    ref = draw(st.one_of(st.sampled_from(names), st.sampled_from(["nosuch", "", "not"]), KEYS))
    value = draw(st.one_of(st.sampled_from(values), JUNK))
    item["when"] = draw(
        st.sampled_from(
            [
                {ref: value},
                {ref: [value, value]},
                {ref: {"not": value}},
                {ref: {"in": [value]}},
                {ref: {"nor": value}},
                {ref: {"not": value, "in": value}},
                {ref: []},
                {ref: {"not": []}},
                {},
                value,
                [ref],
            ]
        )
    )
    return doc


def huge(draw: st.DrawFn, doc: Any) -> Any:
    items = decision_items(doc)
    if not isinstance(doc, dict) or not items:
        return wrong_type(draw, doc)
    blocks = [item for _, item in items if "repeat" in item] or [items[0][1]]
    block = draw(st.sampled_from(blocks))
    _, item = draw(st.sampled_from(items))
    big = draw(st.sampled_from([300, 1001, 10**4, 10**6, 10**18, 10**40]))
    kind = draw(st.integers(0, 4))
    if kind == 0:
        block["count"] = [1, big]
    elif kind == 1:
        block["count"] = list(range(draw(st.sampled_from([50, 502]))))
    elif kind == 2:
        item["choices"] = list(range(draw(st.sampled_from([500, 1001]))))
    elif kind == 3:
        size = draw(st.sampled_from([300, 2001]))
        doc["decisions"] = [{"name": f"d{i}", "choices": [0, 1]} for i in range(size)]
    else:
        size = draw(st.sampled_from([50, 300]))
        block["decisions"] = [{"name": f"d{i}", "choices": [0, 1]} for i in range(size)]
        block["count"] = [1, draw(st.sampled_from([2, 8]))]
    return doc


def duplicate(draw: st.DrawFn, doc: Any) -> Any:
    items = decision_items(doc)
    if not items:
        return wrong_type(draw, doc)
    path, item = draw(st.sampled_from(items))
    kind = draw(st.integers(0, 2))
    if kind == 0:
        siblings = doc if len(path) == 2 else doc["decisions"][path[1]]
        siblings["decisions"].insert(draw(st.integers(0, len(siblings["decisions"]))), item)
    else:
        key = "choices" if kind == 1 else "count"
        if isinstance(item.get(key), list) and item[key]:
            item[key].append(draw(st.sampled_from(item[key])))
        else:
            item[key] = [draw(SCALARS)] * 2
    return doc


def nest(draw: st.DrawFn, doc: Any) -> Any:
    blocks = [item for _, item in decision_items(doc) if isinstance(item.get("decisions"), list)]
    if not blocks:
        return unknown_key(draw, doc)
    inner = {"repeat": "inner", "count": [1], "decisions": [{"name": "a", "choices": [1]}]}
    block = draw(st.sampled_from(blocks))
    block["decisions"].insert(draw(st.integers(0, len(block["decisions"]))), inner)
    return doc


def rename(draw: st.DrawFn, doc: Any) -> Any:
    items = decision_items(doc)
    if not items:
        return wrong_type(draw, doc)
    _, item = draw(st.sampled_from(items))
    names, _ = names_and_values(doc)
    bad = st.sampled_from(["", "a b", "1x", "a.b", "x-y", "é", "_", "class", "layers.0"])
    item["repeat" if "repeat" in item else "name"] = draw(
        st.one_of(st.sampled_from(names), bad, JUNK)
    )
    return doc


def reorder(draw: st.DrawFn, doc: Any) -> Any:
    items = decision_items(doc)
    if not items:
        return wrong_type(draw, doc)
    if draw(st.booleans()):
        doc["decisions"] = draw(st.permutations(doc["decisions"]))
    else:  # a per-layer decision moved to the top level, or the other way round
        path, item = draw(st.sampled_from(items))
        target = draw(st.sampled_from([doc] + [it for _, it in items if "decisions" in it]))
        if isinstance(target.get("decisions"), list):
            target["decisions"].append(copy.deepcopy(item))
    return doc


def family(draw: st.DrawFn, doc: Any) -> Any:
    if not isinstance(doc, dict):
        return wrong_type(draw, doc)
    doc["family"] = draw(st.one_of(st.sampled_from(["cnn", "rnn", "gan", "nosuch", ""]), JUNK))
    return doc


# (a root that is not a mapping hides every other mistake: rarer than the rest)
SPACE_MUTATIONS = [wrong_type, wrong_type, unknown_key, unknown_key, drop_key, break_when]
SPACE_MUTATIONS += [break_when, break_when, huge, huge, duplicate, nest, rename, reorder, family]
SPACE_MUTATIONS += [not_a_mapping]


@st.composite
def space_documents(draw: st.DrawFn) -> bytes:
    doc = copy.deepcopy(draw(st.sampled_from(SPACE_DOCS)))
    for _ in range(draw(st.integers(1, 3))):
        doc = draw(st.sampled_from(SPACE_MUTATIONS))(draw, doc)
    return dump(doc)


@st.composite
def space_bytes(draw: st.DrawFn) -> bytes:
    if draw(st.booleans()):
        text = draw(st.sampled_from(SPACE_TEXTS))
    else:
        text = draw(space_documents()).decode()
    return draw(broken_bytes(text, SPACE_TRICKS))


def key_paths(tree: Any) -> set[str]:
    """The key paths of a document as errors spell them, with its missing required keys."""
    found: set[str] = set()

    def walk(node: Any, here: str, depth: int) -> None:
        if depth > 6 or len(found) > 50000:
            return
        if isinstance(node, dict):
            for key in [*node, *SPACE_REQUIRED]:
                found.add(f"{here}.{key}" if here else str(key))
            for key, child in node.items():
                walk(child, f"{here}.{key}" if here else str(key), depth + 1)
        elif isinstance(node, list):
            for i, child in enumerate(node[:5000]):
                found.add(f"{here}[{i}]")
                walk(child, f"{here}[{i}]", depth + 1)

    walk(tree, "", 0)
    return found


def exercise_space(space: Space) -> None:
    """A space that loads works: sampling, decoding, encoding, keys, counting, listing."""
    actions = space.sample(np.random.default_rng(0))
    arch = space.decode(actions)
    assert space.encode(arch) == actions
    json.dumps(arch, allow_nan=False)
    space.key(arch)
    assert "architectures" in space.describe()  # counts them


def check_space_file(file: Path, data: bytes) -> bool:
    """Load a space file: True when it was refused as the language asks, False when it loaded."""
    file.write_bytes(data)
    try:
        space = load_space(file)
    except SpaceError as exc:
        message = str(exc)
        assert_one_line(message, file)
        assert message.startswith(f"{file}: ")
        tree = parsed(data) if exc.path or "not valid YAML" not in message else NotImplemented
        if isinstance(tree, dict):  # the error points at a key of the document
            assert exc.path and "expected" in message, message
            if plain_keys(tree):
                assert exc.path in key_paths(tree), message
        return True
    exercise_space(space)
    return False


def test_mutated_space_documents(tmp_path: Path) -> None:
    outcomes: list[bool] = []

    @fuzz(750)
    @given(space_documents())
    def check(data: bytes) -> None:
        outcomes.append(check_space_file(tmp_path / "space.yaml", data))

    check()
    assert_mostly_rejected(outcomes, 750)


def test_malformed_space_bytes(tmp_path: Path) -> None:
    outcomes: list[bool] = []

    @fuzz(350)
    @given(space_bytes())
    def check(data: bytes) -> None:
        outcomes.append(check_space_file(tmp_path / "space.yaml", data))

    check()
    assert_mostly_rejected(outcomes, 350, share=0.8)


@pytest.mark.parametrize(
    ("data", "expected"), [r[1:] for r in SPACE_REGRESSIONS], ids=[r[0] for r in SPACE_REGRESSIONS]
)
def test_space_regressions(tmp_path: Path, data: bytes, expected: str | None) -> None:
    file = tmp_path / "space.yaml"
    assert check_space_file(file, data) == (expected is not None)
    if expected is not None:
        with pytest.raises(SpaceError) as info:
            load_space(file)
        assert expected in str(info.value)


# ---------------------------------------------------------------- search config files

CONFIG_DOCS: list[dict[str, Any]] = [
    {"task": "digits", "space": "mlp", "budget": 4, "epochs": 2, "seed": 1},
    {
        "task": "ucr:GunPoint",
        "space": "rnn",
        "controller": "qlearning",
        "concurrency": 2,
        "cpus-per-trial": 0.5,
        "gpus_per_trial": 0,
        "batch_size": 32,
        "lr": 0.01,
        "lr_schedule": "cosine",
        "augment": "scale,jitter",
        "reward": "val_accuracy * (params / 1e5) ** -0.07",
        "duplicates": "retrain",
        "confirm": 2,
        "confirm_runs": 3,
        "keep": "best",
        "child_timeout": 30.0,
        "max_failures": 3,
        "controller_options": {"lr": 0.01, "batch": 5},
        "include": [{"layers": [{"units": 64, "activation": "tanh"}], "cell": "gru"}],
        "name": "gunpoint-rnn",
        "quiet": True,
    },
    {
        "objective": "toyobj:score",
        "space": "spaces/builtin/cnn.yaml",
        "tracking_uri": "sqlite:///x.db",
        "storage": "/tmp/ray",
        "address": "auto",
        "include": "@INCLUDE@",
    },
]
INCLUDE_TEXT = '{"layers": [{"width": 16, "activation": "relu"}]}\n'
INCLUDE_TRICKS = [
    "&a [*a]\n",
    "&a {x: *a}\n",
    f"{{a: {bomb()}}}\n",
    "- 1\n- 2\n",
    "{a: 2001-02-30}\n",
]
CONFIG_TEXTS = [dump(doc).decode() for doc in CONFIG_DOCS]
INC = INCLUDE_TEXT.encode()
# Config files that broke reading (or read as something else), with what reading now says.
CONFIG_REGRESSIONS = [
    ("undecodable", b"budget: 3\xff\n", INC, "not UTF-8 text (byte 9)"),
    ("list-root", b"[]\n", INC, "expected a mapping of setting -> value, got list"),  # defaults
    ("zero-root", b"0\n", INC, "expected a mapping of setting -> value, got int"),
    ("bad-date", b"budget: 2001-02-30\n", INC, "not valid YAML: day is out of range for month"),
    ("deep", b"- " * 5000 + b"1", INC, "not valid YAML: nested too deeply"),
    ("include-nul", b'include: "a\\0b"\n', INC, "include: a\\x00b: cannot read the file"),
    ("include-undecodable", b"include: @INCLUDE@\n", b"{a: \xff}\n", "not UTF-8 text (byte 4)"),
    ("include-bad-date", b"include: @INCLUDE@\n", b"{a: 2001-02-30}\n", "not valid JSON or YAML"),
    (
        "include-date",  # JSON has no dates: the search failed when it logged its config
        b"include: [{a: 2001-01-01}]\n",
        INC,
        "include: expected architectures as JSON-like data",
    ),
    (
        "include-bomb",
        b"include: @INCLUDE@\n",
        f"{{a: {bomb()}}}\n".encode(),
        "include: expected architectures as JSON-like data",
    ),
    ("include-loop", b"include: &i [{a: *i}]\n", INC, "include: expected architectures"),
    (
        "options-loop",  # to_dict() recursed forever
        b"controller_options: &o {a: *o}\n",
        INC,
        "controller_options: expected a mapping of option -> value",
    ),
    (
        "options-bomb",
        f"controller_options: {{a: {bomb()}}}\n".encode(),
        INC,
        "controller_options: expected a mapping of option -> value",
    ),
    (
        "reward-deep-unary",  # MemoryError from Python's parser
        b"reward: '" + b"-" * 100000 + b"1'\n",
        INC,
        "reward: got '------",
    ),
    (
        "reward-long-sum",  # RecursionError from Python's parser
        b"reward: '" + b"+".join([b"x"] * 20000) + b"'\n",
        INC,
        "reward: got 'x+x+x+",
    ),
    ("reward-nul", b'reward: "x\\0"\n', INC, "reward: reward expression 'x\\x00'"),
    ("lr-inf", b"lr: .inf\n", INC, "lr: got inf, expected a finite number > 0"),
    ("lr-huge-int", b"lr: 1" + b"0" * 400 + b"\n", INC, "expected a finite number > 0"),
    ("timeout-nan", b"child_timeout: .nan\n", INC, "child_timeout: got nan, expected a finite"),
    ("seed-negative", b"seed: -1\n", INC, "seed: got -1, expected an integer from 0 to 2**32 - 1"),
    ("seed-huge", b"seed: 4294967296\n", INC, "seed: got 4294967296, expected an integer"),
    (
        "set-twice",  # one of the two won silently
        b"batch-size: 1\nbatch_size: 2\n",
        INC,
        "batch_size: set twice (also as batch-size)",
    ),
    (
        "repeated-key",
        b"budget: 1\nbudget: 2\n",
        INC,
        "not valid YAML at line 2: found duplicate key 'budget'",
    ),
    ("dashed-unknown", b"my-setting: 1\n", INC, "my-setting: unknown setting"),
    ("list-key", b"? [budget]\n: 1\n", INC, "found unhashable key"),
    (
        "long-value",  # the whole value went into the message
        b"include: " + b"x" * 5000 + b"\n",
        INC,
        "x...xxxx",  # with the length of the whole line checked
    ),
    ("empty", b"", INC, None),  # every setting at its default
    ("comment-only", b"# nothing set yet\n", INC, None),
]
CONFIG_TRICKS = [c.decode("utf-8", "replace") for _, c, _, _ in CONFIG_REGRESSIONS]
REWARDS = st.one_of(
    st.lists(
        st.sampled_from(
            ["val_accuracy", "params", "x", "1", "0.5", "1e5", "-", "+", "*", "/", "**", "(", ")"]
            + ["log(", "min(", "max(", ",", "__import__('os')", "a.b", "lambda: 1", "[1]", "{}"]
            + ["'s'", "True", "1 if 1 else 2", ";", "\x00", "=", "==", "and", "not", " ", "\n"]
        ),
        max_size=10,
    ).map("".join),
    st.text(max_size=12),
)
FIELD_VALUES = {
    "budget": st.integers(-3, 3),
    "epochs": st.integers(-3, 3),
    "seed": st.sampled_from([-1, 2**32, 2**64]),
    "concurrency": st.integers(-3, 3),
    "cpus_per_trial": st.sampled_from([0, -1, 0.0, float("nan"), float("inf"), 10**400]),
    "gpus_per_trial": st.sampled_from([-0.5, float("nan"), float("inf"), -(10**400)]),
    "lr": st.sampled_from([0, -1e-3, float("nan"), float("inf"), 10**400]),
    "child_timeout": st.sampled_from([-1, float("nan"), float("inf")]),
    "lr_schedule": st.sampled_from(["warmup", "", "Cosine", "constant "]),
    "keep": st.sampled_from(["all", "", "BEST"]),
    "duplicates": st.sampled_from(["skip", "", "Reuse"]),
    "augment": st.sampled_from(["flip", "scale,,", ",", "none,scale", "scale;jitter", "x" * 500]),
    "reward": REWARDS,
    "objective": st.sampled_from(["", "mod", "a:b:c", ":", "mod:", "\x00:x"]),
    "name": st.sampled_from(["", " ", "\n", "a" * 1000]),
    "include": st.sampled_from(["", "/", "/nonexistent/x.yaml", "a\x00b", "@INCLUDE@", "x" * 5000]),
    "controller_options": st.one_of(JUNK, st.dictionaries(st.integers(), SCALARS, min_size=1)),
}


def bad_value(draw: st.DrawFn, doc: Any) -> Any:
    if not isinstance(doc, dict):
        return wrong_type(draw, doc)
    key = draw(st.sampled_from(sorted(FIELD_VALUES)))
    doc[key] = draw(st.one_of(FIELD_VALUES[key], JUNK))
    return doc


def respell(draw: st.DrawFn, doc: Any) -> Any:
    """A setting spelled with dashes, or set twice under both spellings, or misspelled."""
    if not isinstance(doc, dict) or not doc:
        return unknown_key(draw, doc)
    key = draw(st.sampled_from([k for k in doc if isinstance(k, str)] or ["budget"]))
    other = draw(
        st.sampled_from([key.replace("_", "-"), key.upper(), key + "s", key[:-1], f" {key}"])
    )
    doc[other] = doc.get(key, 1)
    if draw(st.booleans()):
        doc.pop(key, None)
    return doc


CONFIG_MUTATIONS = [wrong_type, unknown_key, drop_key, not_a_mapping, bad_value, bad_value, respell]


@st.composite
def config_documents(draw: st.DrawFn) -> bytes:
    doc = copy.deepcopy(draw(st.sampled_from(CONFIG_DOCS)))
    for _ in range(draw(st.integers(1, 2))):
        doc = draw(st.sampled_from(CONFIG_MUTATIONS))(draw, doc)
    return dump(doc)


@st.composite
def config_bytes(draw: st.DrawFn) -> bytes:
    text = draw(st.one_of(st.sampled_from(CONFIG_TEXTS), config_documents().map(bytes.decode)))
    return draw(broken_bytes(text, CONFIG_TRICKS))


@st.composite
def config_files(draw: st.DrawFn) -> tuple[bytes, bytes]:
    """A config and the architectures file its `include` may name (broken or not)."""
    config = draw(st.one_of(config_documents(), config_bytes()))
    include = draw(
        st.one_of(st.just(INCLUDE_TEXT.encode()), broken_bytes(INCLUDE_TEXT, INCLUDE_TRICKS))
    )
    return config, include


def check_config_file(tmp: Path, files: tuple[bytes, bytes]) -> bool:
    """Read a config file: True when refused with a `ConfigError`, False when it loaded."""
    file, include = tmp / "search.yaml", tmp / "include.yaml"
    data = files[0].replace(b"@INCLUDE@", str(include).encode())
    file.write_bytes(data)
    include.write_bytes(files[1])
    try:
        config = SearchConfig.from_file(file)
    except ConfigError as exc:
        message = str(exc)
        assert_one_line(message, file)
        assert message.startswith(f"{file}: ")
        rest = message[len(f"{file}: ") :]
        tree = parsed(data) if not rest.startswith("not valid YAML") else NotImplemented
        if isinstance(tree, dict) and plain_keys(tree):  # the message names the setting
            key = rest.split(":")[0]
            known = {*map(str, tree), *(str(k).replace("-", "_") for k in tree)}
            assert key in known | set(SearchConfig.field_names()), message
        return True
    json.dumps(config.to_dict(), default=str)
    json.dumps(config.included_architectures(), default=str)
    return False


def test_mutated_config_files(tmp_path: Path) -> None:
    outcomes: list[bool] = []

    @fuzz(450)
    @given(config_files())
    def check(files: tuple[bytes, bytes]) -> None:
        outcomes.append(check_config_file(tmp_path, files))

    check()
    assert_mostly_rejected(outcomes, 450)


@pytest.mark.parametrize(
    ("data", "include", "expected"),
    [r[1:] for r in CONFIG_REGRESSIONS],
    ids=[r[0] for r in CONFIG_REGRESSIONS],
)
def test_config_regressions(
    tmp_path: Path, data: bytes, include: bytes, expected: str | None
) -> None:
    assert check_config_file(tmp_path, (data, include)) == (expected is not None)
    if expected is not None:
        with pytest.raises(ConfigError) as info:
            SearchConfig.from_file(tmp_path / "search.yaml")
        assert expected in str(info.value)


# ---------------------------------------------------------------- data files


def npz_bytes(arrays: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


@st.composite
def data_sets(draw: st.DrawFn) -> dict[str, np.ndarray]:
    """A small valid NPZ data set: (N, T) or (N, T, F) inputs, int or string labels."""
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    steps, classes = draw(st.integers(2, 6)), draw(st.integers(2, 3))
    channels = draw(st.sampled_from([None, 1, 2]))
    label = draw(st.sampled_from(["int", "str", "float", "bool"]))

    def split(n: int) -> tuple[np.ndarray, np.ndarray]:
        shape = (n, steps) if channels is None else (n, steps, channels)
        y = np.arange(n) % (2 if label == "bool" else classes)
        kinds = {"int": y, "str": np.array(["cat", "dog", "eel"])[y], "float": y * 1.0}
        return rng.normal(size=shape).astype(np.float32), kinds.get(label, y.astype(bool))

    arrays = dict(zip(("x_train", "y_train"), split(draw(st.integers(8, 16))), strict=True))
    arrays.update(zip(("x_test", "y_test"), split(draw(st.integers(3, 6))), strict=True))
    if draw(st.booleans()):
        arrays.update(zip(("x_val", "y_val"), split(draw(st.integers(3, 6))), strict=True))
    return arrays


def bad_array(draw: st.DrawFn, like: np.ndarray) -> np.ndarray:
    n = max(len(like) if like.ndim else 0, 2)
    numbers = like.astype(np.float64) if like.dtype.kind in "biuf" else np.zeros(like.shape)
    if numbers.size == 0:
        numbers = np.zeros((n, 3))
    shape = draw(st.sampled_from([(), (0,), (n,), (n, 0), (0, 3), (n, 3, 2, 2), (n - 1, 3)]))
    kind = draw(st.integers(0, 11))
    if kind == 0:
        return np.zeros(shape if shape else (), dtype=np.float32)
    if kind == 1:
        return np.full(like.shape, draw(st.sampled_from(["x", "1.5", "", "nan"])))
    if kind == 2:
        return np.zeros(like.shape, dtype=[("a", "i4"), ("b", "f4")])
    if kind == 3:
        return numbers.astype(np.complex64) + 1j
    if kind == 4:
        return np.zeros(like.shape, dtype="M8[s]")
    if kind == 5:
        out = numbers.copy()
        out.flat[draw(st.integers(0, out.size - 1))] = draw(
            st.sampled_from([np.nan, np.inf, -np.inf, 1e39, 1e300])
        )
        return out
    if kind == 6:
        return np.array([draw(st.sampled_from([b"\xff", b"a", b"\xc3\xa9"])) for _ in range(n)])
    if kind == 7:
        return np.array([object()] * n, dtype=object)
    if kind == 8:
        return np.zeros(n)  # a single class
    if kind == 9:
        return np.array([0.5, 1.5] * (n // 2) + [0.5] * (n % 2))
    if kind == 10:
        return np.array([1e300, 2e300] * (n // 2) + [1e300] * (n % 2))
    return np.arange(n) + 100  # labels unseen elsewhere; one per class


@st.composite
def npz_files(draw: st.DrawFn) -> bytes:
    arrays = draw(data_sets())
    kind = draw(st.integers(0, 9))
    if kind <= 3:
        for _ in range(draw(st.integers(1, 2))):
            key = draw(st.sampled_from(sorted(arrays)))
            arrays[key] = bad_array(draw, arrays[key])
    elif kind == 4:
        del arrays[draw(st.sampled_from(sorted(arrays)))]
    elif kind == 5:
        arrays[draw(st.sampled_from(["x_vall", "X_train", "extra", "y_val"]))] = draw(
            st.sampled_from(list(arrays.values()))
        )
    elif kind == 6:
        key = draw(st.sampled_from(sorted(arrays)))
        members = {f"{k}.npy": npy_bytes(v) for k, v in arrays.items()}
        members[f"{key}.npy"] = draw(
            st.sampled_from([b"", b"hello", npy_bytes(arrays[key])[:20], b"\x93NUMPY\x01\x00"])
        )
        return zip_bytes(members)
    elif kind == 7:
        header = "{'descr': '<f4', 'fortran_order': False, 'shape': (10000000000, 10), }"
        raw = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode()
        members = {f"{k}.npy": npy_bytes(v) for k, v in arrays.items()}
        members["x_train.npy"] = raw
        return zip_bytes(members)
    elif kind == 8:
        return npy_bytes(arrays["x_train"])
    data = npz_bytes(arrays)
    if kind == 9:
        at = draw(st.integers(0, len(data) - 1))
        change = draw(st.integers(0, 3))
        if change == 0:
            return data[:at]
        if change == 1:
            return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :]
        if change == 2:
            return draw(st.binary(max_size=200))
        return draw(st.sampled_from([b"", b"PK\x03\x04", b"PK\x05\x06" + b"\x00" * 18, b"x,1\n"]))
    return data


@st.composite
def csv_files(draw: st.DrawFn) -> bytes:
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    classes, per_class = draw(st.integers(2, 3)), draw(st.integers(5, 7))
    rows = []
    for i in range(classes * per_class):
        values = [f"{v:.3f}" for v in rng.normal(size=draw(st.integers(2, 5)))]
        rows.append([["up", "down", "flat"][i % classes], *values])
    if draw(st.booleans()):
        rows.insert(0, ["label", "t0", "t1"])
    kind = draw(st.integers(0, 12))
    at = draw(st.integers(0, len(rows) - 1))
    row = rows[at]
    if kind == 0:
        row[draw(st.integers(1, len(row) - 1))] = draw(
            st.sampled_from(["x", "nan", "inf", "-inf", "1e999", "1,5", "0x10", "", " ", "1_0"])
        )
    elif kind == 1:
        rows = [r for r in rows if r[0] != row[0]][: draw(st.integers(0, 12))]  # classes missing
    elif kind == 2:
        rows[at] = row[:1]
    elif kind == 3:
        rows = [[r[0]] for r in rows]
    elif kind == 4:
        rows = rows[:1]
    elif kind == 5:
        row[0] = draw(st.sampled_from(["", " ", '"', "a\nb", "\x00"]))
    elif kind == 6:
        row.append("1" * draw(st.sampled_from([1000, 200000])))
    elif kind == 7:
        rows = [r for r in rows for _ in range(draw(st.integers(0, 2)))]
    sep = draw(st.sampled_from([",", ",", ";", "\t"])) if kind == 8 else ","
    newline = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    data = newline.join(sep.join(r) for r in rows).encode() + newline.encode()
    if kind == 9:
        cut = draw(st.integers(0, len(data)))
        data = data[:cut] + draw(st.sampled_from(BAD_BYTES + [b"\x00", b'"', b"\r"])) + data[cut:]
    elif kind == 10:
        data = b"\xef\xbb\xbf" + data
    elif kind == 11:
        data = draw(st.sampled_from([b"", b"\n\n", b",,,\n", b'"', b"\xff\xfe", npz_bytes({})]))
    elif kind == 12:
        data = data.decode().encode("utf-16")
    return data


def check_data_file(file: Path, data: bytes) -> bool:
    """Load a data file: True when refused with a `TaskError`, False when it loaded."""
    file.write_bytes(data)
    try:
        task = load_task(str(file), seed=0)
    except TaskError as exc:
        assert_one_line(str(exc), file)
        return True
    assert isinstance(task, Task)
    for x in (task.x_train, task.x_val, task.x_test):
        assert torch.isfinite(x).all()
    return False


def test_malformed_npz_files(tmp_path: Path) -> None:
    outcomes: list[bool] = []

    @fuzz(250)
    @given(npz_files())
    def check(data: bytes) -> None:
        outcomes.append(check_data_file(tmp_path / "data.npz", data))

    check()
    assert_mostly_rejected(outcomes, 250, share=0.6)


def test_malformed_csv_files(tmp_path: Path) -> None:
    outcomes: list[bool] = []

    @fuzz(200)
    @given(csv_files())
    def check(data: bytes) -> None:
        outcomes.append(check_data_file(tmp_path / "data.csv", data))

    check()
    assert_mostly_rejected(outcomes, 200, share=0.5)


def _valid_arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "x_train": rng.normal(size=(20, 5)),
        "y_train": np.arange(20) % 2,
        "x_test": rng.normal(size=(4, 5)),
        "y_test": np.arange(4) % 2,
    }


def _npz(**arrays: Any) -> bytes:
    return npz_bytes({**_valid_arrays(), **arrays})


def _members(**replaced: bytes) -> bytes:
    members = {f"{k}.npy": npy_bytes(v) for k, v in _valid_arrays().items()}
    return zip_bytes({**members, **{f"{k}.npy": v for k, v in replaced.items()}})


HUGE_HEADER = "{'descr': '<f4', 'fortran_order': False, 'shape': (10000000000, 10), }"
CSV_ROWS = "".join(f"{'ab'[i % 2]},{i},{i + 1}\n" for i in range(10))
# Data files that broke loading (or loaded as something else), with what loading now says.
DATA_REGRESSIONS = [
    ("not-a-zip", "npz", b"PK\x03\x04" + b"\0" * 40, "not a readable .npz file (File is not a zip"),
    ("truncated", "npz", _npz()[:300], "not a readable .npz file"),
    ("bad-crc", "npz", _npz()[:150] + b"\xff" + _npz()[151:], "is not a readable array (Bad CRC"),
    ("plain-npy", "npz", npy_bytes(np.zeros((3, 4))), "holds one array (a .npy file)"),
    ("member-not-npy", "npz", _members(y_train=b"hello"), "y_train is not a NumPy array"),
    (
        "huge-header",  # numpy tried to allocate 373 GiB
        "npz",
        _members(
            x_train=b"\x93NUMPY\x01\x00"
            + len(HUGE_HEADER).to_bytes(2, "little")
            + HUGE_HEADER.encode()
        ),
        "x_train is not a readable array (Unable to allocate",
    ),
    (
        "structured-labels",
        "npz",
        _npz(y_train=np.zeros(20, dtype=[("a", "i4"), ("b", "f4")])),
        "y_train has dtype [('a', '<i4'), ('b', '<f4')]; expected integer or text labels",
    ),
    (
        "datetime-inputs",  # loaded as numbers
        "npz",
        _npz(x_train=np.zeros((20, 5), dtype="M8[s]")),
        "x_train has dtype datetime64[s]; expected numbers",
    ),
    (
        "complex-inputs",  # loaded, imaginary parts dropped
        "npz",
        _npz(x_train=_valid_arrays()["x_train"] + 1j),
        "x_train has dtype complex128; expected numbers",
    ),
    (
        "float64-overflow",
        "npz",
        _npz(x_test=np.full((4, 5), 1e300)),
        "x_test holds NaN or infinite values (or values beyond float32's range)",
    ),
    (
        "bytes-labels",
        "npz",
        _npz(y_train=np.array([b"\xff", b"a"] * 10)),
        "y_train holds bytes that are not UTF-8 text",
    ),
    (
        "huge-float-labels",  # both classes became the same int64
        "npz",
        _npz(y_train=np.array([1e300, 2e300] * 10), y_test=np.array([1e300, 2e300] * 2)),
        None,
    ),
    ("csv-undecodable", "csv", b"a,1,2\xff\n" * 10, "not UTF-8 text (byte 5)"),
    ("csv-huge-cell", "csv", b"a,1," + b"1" * 200000 + b"\n", "line 1 is not CSV (field larger"),
    ("csv-header-only", "csv", b"label,t0,t1\n", "a header row only"),
    ("csv-bom", "csv", b"\xef\xbb\xbf" + CSV_ROWS.encode(), None),  # was a third class
]


@pytest.mark.parametrize(
    ("suffix", "data", "expected"),
    [r[1:] for r in DATA_REGRESSIONS],
    ids=[r[0] for r in DATA_REGRESSIONS],
)
def test_data_file_regressions(tmp_path: Path, suffix: str, data: bytes, expected: str | None):
    file = tmp_path / f"data.{suffix}"
    assert check_data_file(file, data) == (expected is not None)
    if expected is None:
        assert load_task(str(file)).num_classes == 2
    else:
        with pytest.raises(TaskError) as info:
            load_task(str(file))
        assert expected in str(info.value)
