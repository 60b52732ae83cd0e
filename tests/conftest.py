"""Test-wide settings."""

import os

# Every Ray cluster the tests start lives on this machine alone: keep its traffic on loopback
# (Ray's own switch; read when Ray is first imported, so it is set before any test module).
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
