"""Fixtures shared by every test folder (each lives in tests/plugins/)."""

pytest_plugins = [
    "tests.plugins.browser",
    "tests.plugins.engine",
    "tests.plugins.images",
    "tests.plugins.postgres",
    "tests.plugins.simulator",
]
