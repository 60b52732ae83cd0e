"""Controllers: who proposes the next architecture (ask/tell), and the architecture MDP."""

from __future__ import annotations

from controller.base import Candidate, Controller
from controller.env import ArchitectureEnv
from controller.random_search import RandomSearch
from controller.registry import (
    get_controller,
    list_controllers,
    make_controller,
    register_controller,
)
from controller.reinforce import Reinforce, ReinforceOptions

__all__ = [
    "ArchitectureEnv",
    "Candidate",
    "Controller",
    "RandomSearch",
    "Reinforce",
    "ReinforceOptions",
    "get_controller",
    "list_controllers",
    "make_controller",
    "register_controller",
]
