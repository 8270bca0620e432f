"""Run the command line: ``python -m studio --help``."""

from __future__ import annotations

from studio.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
