"""Helpers shared by several test modules (import as `from tests.support.goldens import ...`)."""
