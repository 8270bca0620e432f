"""``python -m studio`` on the tests' fast schedule: ``python -m tests.plugins.fast_worker watch``.

Leases last seconds instead of a minute, so tests see a killed worker's jobs taken over quickly.
"""

from __future__ import annotations

import sys

from studio.cli import main
from tests.plugins.engine import FAST_POLICY

if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:], poll_policy=FAST_POLICY))
