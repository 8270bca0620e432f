"""Fixtures shared by every test folder (each lives in tests/plugins/)."""

pytest_plugins = [
    "tests.plugins.postgres",
]
