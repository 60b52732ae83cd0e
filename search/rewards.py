"""Reward expressions over a child's reported metrics, parsed safely (no `eval`).

An expression combines metric names, numbers, ``+ - * / **``, unary minus and the functions
``min max abs log exp sqrt``; e.g. the MnasNet-style trade-off
``val_accuracy * (params / 1e5) ** -0.07``.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["RewardExpression", "RewardExpressionError"]

_BINARY: dict[type, Callable[[float, float], float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
}
_UNARY: dict[type, Callable[[float], float]] = {ast.USub: operator.neg, ast.UAdd: operator.pos}
_FUNCTIONS: dict[str, Callable[..., float]] = {
    "min": min,
    "max": max,
    "abs": abs,
    "log": math.log,
    "exp": math.exp,
    "sqrt": math.sqrt,
}


class RewardExpressionError(ValueError):
    """The expression is not of the allowed form, or names a metric a child did not report."""


class RewardExpression:
    """A parsed reward expression; call it with a mapping of metric name -> number."""

    def __init__(self, text: str):
        self.text = text
        try:
            tree = ast.parse(text.strip(), mode="eval")
        except SyntaxError as exc:
            raise RewardExpressionError(
                f"reward expression {text!r}: not an expression (column {exc.offset})"
            ) from None
        self.names: set[str] = set()
        self._check(tree.body)
        self._tree = tree.body

    def _check(self, node: ast.AST) -> None:
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            if isinstance(node.value, bool):
                self._reject(node)
        elif isinstance(node, ast.Name):
            self.names.add(node.id)
        elif isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            self._check(node.left)
            self._check(node.right)
        elif isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
            self._check(node.operand)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in _FUNCTIONS
            and not node.keywords
            and node.args
        ):
            for arg in node.args:
                self._check(arg)
        else:
            self._reject(node)

    def _reject(self, node: ast.AST) -> None:
        piece = ast.get_source_segment(self.text.strip(), node) or type(node).__name__
        raise RewardExpressionError(
            f"reward expression {self.text!r}: {piece!r} is not allowed (expected metric names, "
            f"numbers, + - * / **, and {', '.join(sorted(_FUNCTIONS))})"
        )

    def __call__(self, metrics: Mapping[str, Any]) -> float:
        missing = sorted(n for n in self.names if n not in metrics)
        if missing:
            raise RewardExpressionError(
                f"reward expression {self.text!r} uses {missing}, which the child did not report "
                f"(it reported {sorted(k for k, v in metrics.items() if _is_number(v))})"
            )
        try:
            return float(self._evaluate(self._tree, metrics))
        except (ArithmeticError, ValueError, TypeError):
            return math.nan  # e.g. log(0): a failed child, not a failed search

    def _evaluate(self, node: ast.AST, metrics: Mapping[str, Any]) -> float:
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return node.value
        if isinstance(node, ast.Name):
            return float(metrics[node.id])
        if isinstance(node, ast.BinOp):
            left = self._evaluate(node.left, metrics)
            return _BINARY[type(node.op)](left, self._evaluate(node.right, metrics))
        if isinstance(node, ast.UnaryOp):
            return _UNARY[type(node.op)](self._evaluate(node.operand, metrics))
        # `_check` let through no other node than a call of one of `_FUNCTIONS`
        assert isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
        args = [self._evaluate(arg, metrics) for arg in node.args]
        return _FUNCTIONS[node.func.id](*args)

    def __repr__(self) -> str:
        return f"RewardExpression({self.text!r})"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
