"""Video bytes for ``st.video``, read once per server process rather than on every rerun.

Given a path, ``st.video`` reads the whole file on each run of the page. Handed the same bytes
object instead, it hashes a few samples of it and serves the media it already holds, so a page
that reruns every few seconds (a batch's grid, Compare) does not read its MP4s again.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from studio.compare import MAX_CLIPS as MAX_COMPARED
from studio.variations import MAX_CLIPS as MAX_IN_A_BATCH

# Clips kept in server memory: a full batch's grid and a full comparison on screen at once.
VIDEOS_KEPT = MAX_IN_A_BATCH + MAX_COMPARED


def kept_video(path: Path) -> bytes:
    """The video file's bytes, read again only when the file changed."""
    status = path.stat()
    return _video_bytes(str(path), status.st_mtime_ns, status.st_size)


@st.cache_resource(max_entries=VIDEOS_KEPT, show_spinner=False)
def _video_bytes(path: str, modified_ns: int, size: int) -> bytes:
    # Keyed by the file's time and size too, so a replaced file is read again. The same bytes
    # object is handed to st.video each rerun, which hashes a few samples of it, not all of it.
    return Path(path).read_bytes()
