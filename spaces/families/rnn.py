"""The `rnn` family: stacked recurrent layers over a sequence, summarised, then a linear head.

Architecture (defaults in brackets)::

    {"cell": "rnn" | "gru" | "lstm" | "mgu" | "peephole_lstm" | "coupled_lstm" ["lstm"],
     "bidirectional": bool [false],
     "dropout": float in [0, 1) [0.0],
     "layers": [{"units": int >= 0, "activation": "tanh" | "relu" | "sigmoid" | ... ["tanh"]},
                ...],
     "readout": "last" | "mean" | "attention" ["last"]}

Inputs are (T, F) sequences; an image (C, H, W) is read as H steps of C * W features and a
(T,) series as T steps of one feature. A layer with 0 units is skipped (it may omit
`activation`); each other layer is its own recurrent module (units differ), followed by its
activation applied to its whole output sequence, then dropout (when > 0).

Cells: ``rnn``, ``gru`` and ``lstm`` are torch's; ``mgu`` (minimal gated unit: one forget gate),
``peephole_lstm`` (gates also see the cell state) and ``coupled_lstm`` (input gate = 1 - forget
gate) are small custom cells stepping in Python (slower on long series). A bidirectional layer
runs a second module over the reversed sequence and concatenates both (2 * units wide).

Readouts (how the sequence is summarised): ``last`` step, ``mean`` over steps, ``attention``
pooling (a learned score per step, softmax over time). Series of unequal length come
zero-padded at the end; given their true lengths (``model(x, lengths)``, as the trainers do for
such tasks) ``last`` takes each series' final valid step, ``mean``, ``max`` and ``attention``
pool over valid steps only, and a bidirectional layer reads each series backwards from its own
end. Without lengths every step counts.

Extension points: a new cell is an entry of `CELLS` (a factory of a batch-first module
returning ``(outputs, state)``); a new readout is an entry of `READOUTS` (a factory of a module
mapping (B, T, F) and optional lengths (B,) to (B, F)).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn

from ._common import (
    check_keys,
    make_activation,
    read_bool,
    read_choice,
    read_float,
    read_int,
    read_layers,
    read_mapping,
)
from ._registry import InvalidArchitecture, register_family

__all__ = [
    "CELLS",
    "READOUTS",
    "AttentionPool",
    "CustomRecurrent",
    "LengthAware",
    "RecurrentLayer",
    "SequenceModel",
    "ToSequence",
    "build_rnn",
    "build_recurrent_stack",
    "reverse_padded",
    "valid_mask",
]


class _Cell(nn.Module):
    """A cell `CustomRecurrent` steps: its input projection holds `gates` blocks of units."""

    gates: int


class _MGUCell(_Cell):
    """Minimal gated unit: f = σ(Wx + Uh), h~ = tanh(Wx + U(f*h)), h = (1-f) h + f h~."""

    gates = 2

    def __init__(self, units: int) -> None:
        super().__init__()
        self.u_f = nn.Linear(units, units, bias=False)
        self.u_h = nn.Linear(units, units, bias=False)

    def forward(
        self, xw: torch.Tensor, state: tuple[torch.Tensor, ...]
    ) -> tuple[torch.Tensor, ...]:
        (h,) = state
        xf, xh = xw.chunk(2, dim=-1)
        f = torch.sigmoid(xf + self.u_f(h))
        candidate = torch.tanh(xh + self.u_h(f * h))
        return ((1 - f) * h + f * candidate,)


class _PeepholeLSTMCell(_Cell):
    """LSTM whose input and forget gates see c_{t-1} and whose output gate sees c_t.

    With ``coupled`` the input gate is 1 - forget gate (no input-gate weights).
    """

    def __init__(self, units: int, peephole: bool = True, coupled: bool = False) -> None:
        super().__init__()
        self.coupled = coupled
        self.gates = 3 if coupled else 4
        self.u = nn.Linear(units, self.gates * units, bias=False)
        self.peep = nn.Parameter(torch.zeros(3, units)) if peephole else None

    def forward(
        self, xw: torch.Tensor, state: tuple[torch.Tensor, ...]
    ) -> tuple[torch.Tensor, ...]:
        h, c = state
        z = xw + self.u(h)
        if self.coupled:
            zf, zo, zc = z.chunk(3, dim=-1)
        else:
            zi, zf, zo, zc = z.chunk(4, dim=-1)
        if self.peep is not None:
            zf = zf + self.peep[1] * c
        f = torch.sigmoid(zf)
        if self.coupled:
            i = 1 - f
        else:
            i = torch.sigmoid(zi + self.peep[0] * c if self.peep is not None else zi)
        c = f * c + i * torch.tanh(zc)
        o = torch.sigmoid(zo + self.peep[2] * c if self.peep is not None else zo)
        return o * torch.tanh(c), c


class CustomRecurrent(nn.Module):
    """A batch-first recurrent module around a custom cell; returns ``(outputs, None)``."""

    def __init__(self, inputs: int, units: int, cell: _Cell, states: int) -> None:
        super().__init__()
        self.cell = cell
        self.units, self.states = units, states
        self.w = nn.Linear(inputs, cell.gates * units)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:  # (B, T, F) -> (B, T, H)
        xw = self.w(x)  # all input projections at once: (B, T, G * H)
        state = tuple(x.new_zeros(x.shape[0], self.units) for _ in range(self.states))
        outputs = []
        for t in range(x.shape[1]):
            state = self.cell(xw[:, t], state)
            outputs.append(state[0])
        return torch.stack(outputs, dim=1), None


CELLS: dict[str, Callable[[int, int], nn.Module]] = {
    "rnn": lambda inputs, units: nn.RNN(inputs, units, batch_first=True),
    "gru": lambda inputs, units: nn.GRU(inputs, units, batch_first=True),
    "lstm": lambda inputs, units: nn.LSTM(inputs, units, batch_first=True),
    "mgu": lambda inputs, units: CustomRecurrent(inputs, units, _MGUCell(units), 1),
    "peephole_lstm": lambda inputs, units: CustomRecurrent(
        inputs, units, _PeepholeLSTMCell(units), 2
    ),
    "coupled_lstm": lambda inputs, units: CustomRecurrent(
        inputs, units, _PeepholeLSTMCell(units, peephole=False, coupled=True), 2
    ),
}
"""Recurrent modules by cell name: ``factory(input_size, units)``, batch first."""


@runtime_checkable
class LengthAware(Protocol):
    """A module that says how many of its output steps are valid (a downsampling one)."""

    def out_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Valid output steps of series with ``lengths`` valid input steps."""


def valid_mask(lengths: torch.Tensor, steps: int) -> torch.Tensor:
    """``(B, steps)`` booleans: True at the valid (unpadded) steps of each series."""
    return torch.arange(steps, device=lengths.device)[None, :] < lengths[:, None]


def reverse_padded(x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
    """Reverse each (B, T, F) series within its own length; padding stays at the end."""
    if lengths is None:
        return x.flip(1)
    steps = torch.arange(x.shape[1], device=x.device)[None, :]
    ends = lengths.to(x.device)[:, None]
    index = torch.where(steps < ends, ends - 1 - steps, steps)
    return x.gather(1, index[:, :, None].expand_as(x))


class _Last(nn.Module):
    def forward(
        self, h: torch.Tensor, lengths: torch.Tensor | None = None
    ) -> torch.Tensor:  # (B, T, F) -> (B, F)
        if lengths is None:
            return h[:, -1]
        return h[torch.arange(h.shape[0], device=h.device), lengths.to(h.device) - 1]


class _Mean(nn.Module):
    def forward(self, h: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        if lengths is None:
            return h.mean(dim=1)
        mask = valid_mask(lengths.to(h.device), h.shape[1]).unsqueeze(-1).to(h.dtype)
        return (h * mask).sum(dim=1) / mask.sum(dim=1)


class _Max(nn.Module):
    def forward(self, h: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        if lengths is None:
            return h.amax(dim=1)
        mask = valid_mask(lengths.to(h.device), h.shape[1]).unsqueeze(-1)
        return h.masked_fill(~mask, torch.finfo(h.dtype).min).amax(dim=1)


class AttentionPool(nn.Module):
    """Attention pooling over time: softmax of a learned score per step, weighted sum."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.score = nn.Linear(features, 1)

    def forward(
        self, h: torch.Tensor, lengths: torch.Tensor | None = None
    ) -> torch.Tensor:  # (B, T, F) -> (B, F)
        scores = self.score(h)  # (B, T, 1)
        if lengths is not None:
            mask = valid_mask(lengths.to(h.device), h.shape[1]).unsqueeze(-1)
            scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
        weights = torch.softmax(scores, dim=1)
        return (weights * h).sum(dim=1)


READOUTS: dict[str, Callable[[int], nn.Module]] = {
    "last": lambda features: _Last(),
    "mean": lambda features: _Mean(),
    "max": lambda features: _Max(),
    "attention": AttentionPool,
}
"""Ways to turn an output sequence (B, T, F) into features (B, F): ``factory(F) -> module``."""

RNN_READOUTS = ("last", "mean", "attention")
_LAYER_KEYS = ("units", "activation")
_ARCH_KEYS = ("cell", "layers", "readout", "bidirectional", "dropout")


class ToSequence(nn.Module):
    """Reshape a batch of examples to (B, T, F): (T, F) as is, (C, H, W) as H steps of C*W."""

    def __init__(self, input_shape: tuple[int, ...], family: str = "rnn") -> None:
        super().__init__()
        if not 1 <= len(input_shape) <= 3:
            raise InvalidArchitecture(
                f"{family} needs a (T, F) sequence or (C, H, W) image input, "
                f"got shape {input_shape}"
            )
        self.rank = len(input_shape)
        if self.rank == 1:
            self.steps, self.features = input_shape[0], 1
        elif self.rank == 2:
            self.steps, self.features = input_shape
        else:
            channels, self.steps, width = input_shape
            self.features = channels * width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.rank == 1:  # (B, T) -> (B, T, 1)
            return x.unsqueeze(-1)
        if self.rank == 3:  # (B, C, H, W) -> (B, H, C * W)
            return x.permute(0, 2, 1, 3).reshape(x.shape[0], x.shape[2], -1)
        return x


class RecurrentLayer(nn.Module):
    """One recurrent module (two if bidirectional), an activation, then optional dropout."""

    def __init__(
        self,
        cell: str,
        in_features: int,
        units: int,
        activation: nn.Module,
        bidirectional: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.rnn = CELLS[cell](in_features, units)
        self.backward_rnn = CELLS[cell](in_features, units) if bidirectional else None
        self.act = activation
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.out_features = units * (2 if bidirectional else 1)

    def forward(
        self, x: torch.Tensor, lengths: torch.Tensor | None = None
    ) -> torch.Tensor:  # (B, T, F) -> (B, T, out_features)
        out, _ = self.rnn(x)
        if self.backward_rnn is not None:
            back, _ = self.backward_rnn(reverse_padded(x, lengths))
            out = torch.cat([out, reverse_padded(back, lengths)], dim=-1)
        return self.drop(self.act(out))


class SequenceModel(nn.Module):
    """Sequence view -> [front-end] -> recurrent layers -> readout -> linear head."""

    def __init__(
        self,
        to_sequence: ToSequence,
        layers: Sequence[nn.Module],
        readout: nn.Module,
        head: nn.Module,
        front: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.to_sequence = to_sequence
        self.front = front if front is not None else nn.Identity()
        self.layers = nn.ModuleList(layers)
        self.readout = readout
        self.head = head

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        h = self.to_sequence(x)  # (B, T, F)
        if lengths is not None and isinstance(self.front, LengthAware):  # a conv front-end
            h, lengths = self.front(h, lengths), self.front.out_lengths(lengths)
        else:
            h = self.front(h)
        for layer in self.layers:
            h = layer(h, lengths)
        return self.head(self.readout(h, lengths))  # (B, F') -> (B, outputs)


def build_recurrent_stack(
    arch: Mapping[str, Any], features: int
) -> tuple[list[RecurrentLayer], int]:
    """The recurrent layers of ``arch`` (keys cell, bidirectional, dropout, layers).

    Returns:
        The layers and the width of their output.
    """
    cell = read_choice(arch, "cell", "cell", tuple(CELLS), default="lstm")
    bidirectional = read_bool(arch, "bidirectional", "bidirectional", default=False)
    dropout = read_float(arch, "dropout", "dropout", default=0.0)
    layers: list[RecurrentLayer] = []
    for i, spec in enumerate(read_layers(arch, _LAYER_KEYS)):
        where = f"layers.{i}"
        units = read_int(spec, "units", f"{where}.units", minimum=0)
        if units == 0:
            continue
        act = make_activation(spec.get("activation", "tanh"), f"{where}.activation")
        layers.append(RecurrentLayer(cell, features, units, act, bidirectional, dropout))
        features = layers[-1].out_features
    if not layers:
        raise InvalidArchitecture("every recurrent layer has 0 units")
    return layers, features


@register_family("rnn")
def build_rnn(arch: Mapping[str, Any], input_shape: tuple[int, ...], num_outputs: int) -> nn.Module:
    """Build an `rnn` architecture for sequence (or image-as-sequence) inputs."""
    to_sequence = ToSequence(tuple(input_shape))
    arch = read_mapping(arch, "architecture")
    check_keys(arch, _ARCH_KEYS, "architecture")
    readout = read_choice(arch, "readout", "readout", RNN_READOUTS, default="last")
    layers, features = build_recurrent_stack(arch, to_sequence.features)
    return SequenceModel(
        to_sequence, layers, READOUTS[readout](features), nn.Linear(features, num_outputs)
    )
