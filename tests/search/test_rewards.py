"""Reward expressions: what they compute, and what they refuse to run."""

from __future__ import annotations

import math

import pytest

from search.rewards import RewardExpression, RewardExpressionError


def test_mnasnet_style_trade_off():
    reward = RewardExpression("val_accuracy * (params / 1e5) ** -0.07")
    assert reward({"val_accuracy": 0.9, "params": 1e5}) == pytest.approx(0.9)
    smaller = reward({"val_accuracy": 0.9, "params": 1e4})
    assert smaller == pytest.approx(0.9 * 0.1**-0.07) and smaller > 0.9
    assert reward.names == {"val_accuracy", "params"}


def test_functions_and_unary_minus():
    reward = RewardExpression("-log(max(val_loss, 1e-9)) + min(1, abs(-2)) - sqrt(4) + exp(0)")
    assert reward({"val_loss": 1.0}) == pytest.approx(0.0)


@pytest.mark.parametrize(
    "text",
    [
        "__import__('os').system('true')",
        "val_accuracy.real",
        "open('x')",
        "[1, 2]",
        "val_accuracy if params else 0",
        "lambda: 1",
        "'text'",
        "True",
        "max(val_accuracy, key=abs)",
        "val_accuracy % 2",
    ],
)
def test_anything_else_is_refused(text):
    with pytest.raises(RewardExpressionError, match="not allowed|not an expression"):
        RewardExpression(text)


def test_syntax_errors_and_missing_metrics_are_clear():
    with pytest.raises(RewardExpressionError, match="not an expression"):
        RewardExpression("val_accuracy *")
    with pytest.raises(RewardExpressionError, match=r"uses \['val_acc'\].*reported \['params'\]"):
        RewardExpression("val_acc * 2")({"params": 3, "note": "x"})


def test_arithmetic_failures_give_nan_not_a_crash():
    assert math.isnan(RewardExpression("log(x)")({"x": 0}))
    assert math.isnan(RewardExpression("1 / x")({"x": 0}))
