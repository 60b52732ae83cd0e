"""A kept model as a file other runtimes read: ONNX, TorchScript, or its weights and architecture.

ONNX and TorchScript files compute what the model's forward does (`search.model_io` names
the inputs: ``x`` and, for sequences, ``lengths``; ``z`` for a generative model): logits for
classification (log-probabilities for an ensemble of classifiers), forecasts, samples. The
batch size is free. ``state-dict`` writes the model directory (`search.model_files`), which
`search.model_files.load_model_dir` rebuilds without running pickled code.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported when exporting, so that the CLI's help stays quick
    import torch
    from torch import nn

    from search.model_io import ModelIO

__all__ = ["FORMATS", "ExportError", "export_model_dir"]

FORMATS = ("onnx", "torchscript", "state-dict")
"""The formats `export_model_dir` writes."""
ONNX_OPSET = 18


class ExportError(RuntimeError):
    """The model cannot be written in that format; the message says why, in one line."""


def export_model_dir(model_dir: str | Path, fmt: str, out: str | Path) -> Path:
    """Write the model of model directory `model_dir` to `out` in format `fmt` (one of
    `FORMATS`); return `out`."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "state-dict":
        if out.exists():
            raise ExportError(f"{out} exists; the model directory goes to a new path")
        shutil.copytree(model_dir, out)
        return out
    from search.model_files import load_model_dir, read_spec
    from search.model_io import model_io

    model = load_model_dir(model_dir)
    spec = read_spec(model_dir)
    io = model_io(model, spec.input_shape, spec.num_outputs, "samples")
    example = tuple(io.tensors(io.example(3)))
    if fmt == "torchscript":
        _torchscript(model, example, out)
    else:
        _onnx(model, io, example, out)
    return out


def _torchscript(model: nn.Module, example: tuple[torch.Tensor, ...], out: Path) -> None:
    import torch

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracing notes (and torch.jit's deprecation)
            traced = torch.jit.trace(model, example, check_trace=False)
    except Exception as exc:
        raise ExportError(f"cannot trace the model for TorchScript: {_one_line(exc)}") from exc
    traced.save(str(out))


def _onnx(model: nn.Module, io: ModelIO, example: tuple[torch.Tensor, ...], out: Path) -> None:
    try:
        import onnxscript  # noqa: F401  (torch's ONNX exporter needs it)
    except ImportError:
        raise ExportError(
            "ONNX export needs the onnx and onnxscript packages: pip install 'rlnas[export]'"
        ) from None
    import torch

    batch = torch.export.Dim("batch", min=1)
    shapes = tuple({0: batch} for _ in io.names)  # by position: forward's names differ
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                program = torch.onnx.export(
                    model,
                    example,
                    input_names=list(io.names),
                    output_names=["output"],
                    dynamic_shapes=shapes,
                    opset_version=ONNX_OPSET,
                    dynamo=True,
                    verbose=False,
                )
        except Exception as exc:
            raise ExportError(f"cannot export the model to ONNX: {_one_line(exc)}") from exc
        if program is None:
            raise ExportError("cannot export the model to ONNX: the exporter wrote nothing")
        path = Path(tmp, "model.onnx")
        program.save(str(path), external_data=False)
        shutil.move(str(path), out)


def _one_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[0] if lines else type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."
