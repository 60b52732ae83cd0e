"""Controllers: who proposes the next architecture (ask/tell), and the architecture MDP."""

from __future__ import annotations

from controller.base import Candidate, Controller
from controller.dqn import DQN, DQNOptions
from controller.env import ArchitectureEnv
from controller.evolution import Evolution, EvolutionOptions
from controller.local import LocalSearch, LocalSearchOptions
from controller.qlearning import QLearning, QLearningOptions
from controller.random_search import RandomSearch
from controller.registry import (
    get_controller,
    list_controllers,
    make_controller,
    register_controller,
)
from controller.reinforce import Reinforce, ReinforceOptions
from controller.tpe import TPE, TPEOptions
from controller.warm import SharedDecisions

__all__ = [
    "DQN",
    "TPE",
    "ArchitectureEnv",
    "Candidate",
    "Controller",
    "DQNOptions",
    "Evolution",
    "EvolutionOptions",
    "LocalSearch",
    "LocalSearchOptions",
    "QLearning",
    "QLearningOptions",
    "RandomSearch",
    "Reinforce",
    "ReinforceOptions",
    "SharedDecisions",
    "TPEOptions",
    "get_controller",
    "list_controllers",
    "make_controller",
    "register_controller",
]
