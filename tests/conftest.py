"""Fixtures shared by every test folder (each lives in tests/plugins/)."""

# Images first: the engine plugin builds its drafts with its helpers.
pytest_plugins = [
    "tests.plugins.images",
    "tests.plugins.browser",
    "tests.plugins.engine",
    "tests.plugins.postgres",
    "tests.plugins.simulator",
    "tests.plugins.objectstore",
]
