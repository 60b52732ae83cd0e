"""Fixtures shared by the search tests: a Ray head node of its own."""

from __future__ import annotations

import pytest

from tests.search.ray_heads import Head


@pytest.fixture
def head():
    node = Head()
    try:
        yield node
    finally:
        node.close()


@pytest.fixture
def ray_head(head):
    """The address of a head node of its own (`Head`)."""
    return head.address
