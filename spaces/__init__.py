"""Search spaces: the declared YAML language, `Space`, built-in spaces and model families."""

from spaces.loading import BUILTIN_DIR, list_spaces, load_space
from spaces.space import Slot, Space, SpaceError

__all__ = ["BUILTIN_DIR", "Slot", "Space", "SpaceError", "list_spaces", "load_space"]
