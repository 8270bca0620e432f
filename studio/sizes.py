"""File sizes as people read them, in one unit everywhere: decimal megabytes.

1 MB is 1,000,000 bytes, as Streamlit's uploader counts its own limit ("25MB per file") in
browsers on Linux and macOS. A limit is rounded down, so that what it promises is true: the
video service's 10,485,760 bytes read "10.4 MB", and every file of 10.4 MB or less is taken.
"""

from __future__ import annotations

import math

MEGABYTE = 1_000_000
KILOBYTE = 1_000


def file_size(size_bytes: int) -> str:
    """How big a file is: ``840 bytes``, ``12 KB``, ``3.2 MB``."""
    if size_bytes < KILOBYTE:
        return f"{size_bytes} bytes"
    if size_bytes < MEGABYTE:
        return f"{size_bytes / KILOBYTE:.0f} KB"
    return f"{size_bytes / MEGABYTE:.1f} MB"


def size_limit(size_bytes: int) -> str:
    """A limit, rounded down to a tenth: ``25 MB`` for 25,000,000 bytes, ``10.4 MB`` for 10 MiB."""
    if size_bytes < MEGABYTE:
        return f"{size_bytes // KILOBYTE} KB"
    tenths = math.floor(size_bytes * 10 / MEGABYTE)
    return f"{tenths // 10} MB" if tenths % 10 == 0 else f"{tenths / 10:.1f} MB"
