"""Controllers by name: `register_controller`, `make_controller`, `list_controllers`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from controller.base import Controller

_CONTROLLERS: dict[str, type[Controller]] = {}


def register_controller(name: str) -> Callable[[type[Controller]], type[Controller]]:
    """Class decorator that registers a `Controller` subclass under `name`.

    Raises:
        ValueError: `name` is already registered.
    """

    def decorator(cls: type[Controller]) -> type[Controller]:
        if name in _CONTROLLERS:
            raise ValueError(
                f"controller {name!r} is already registered (by {_CONTROLLERS[name].__qualname__})"
            )
        if not (isinstance(cls, type) and issubclass(cls, Controller)):
            raise TypeError(f"{cls!r} is not a Controller subclass")
        cls.name = name
        _CONTROLLERS[name] = cls
        return cls

    return decorator


def list_controllers() -> list[str]:
    """Names of the registered controllers, sorted."""
    return sorted(_CONTROLLERS)


def get_controller(name: str) -> type[Controller]:
    """The controller class registered under `name`.

    Raises:
        ValueError: No controller has that name (the message lists the known ones).
    """
    try:
        return _CONTROLLERS[name]
    except KeyError:
        raise ValueError(
            f"unknown controller {name!r}; known controllers: {', '.join(list_controllers())}"
        ) from None


def make_controller(name: str, space, seed: int = 0, **options: Any) -> Controller:
    """Build the controller `name` for `space`.

    Raises:
        ValueError: Unknown controller name.
        TypeError: An option the controller does not have.
    """
    return get_controller(name)(space, seed=seed, **options)
