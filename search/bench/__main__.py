"""``python -m search.bench``: `rlnas bench` without the CLI."""

import sys

from search.bench.cli import main

sys.exit(main())
