"""``python -m search.bench``: `rlnas bench` without the CLI."""

import sys

from search.bench.cli import main

if __name__ == "__main__":  # spawned workers of --jobs import this module again
    sys.exit(main())
