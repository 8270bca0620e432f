"""The app's own CSS, sent once at the top of every run, before any page draws.

Streamlit sends style-only HTML to the page's event container, beside the toasts, and keeps each
element there by its place in that run's list. A style drawn in the middle of a page lost its
place to whatever came before it in the next run (the toast after a click, a new card's style),
and was missing until the run reached it again: the result column scrolled away, a card's video
grew past the window. Drawn first, only a button's own toast can come before it, and no card has
been drawn by then. Every rule is scoped by a widget key, so each applies to its page only.
"""

from __future__ import annotations

import streamlit as st

# Below this width History's table would scroll sideways inside the page, and Compare puts two
# clips a row.
NARROW_MAX_PX = 640

_APP_STYLE = f"""
<style>
/* Generate: the result column stays in view while the form scrolls, so the new job's card is on
   screen right after the click; on a phone the columns stack and it follows the button. */
@media (min-width: {NARROW_MAX_PX + 1}px) {{
  [data-testid="stColumn"]:has(.st-key-gen-result) {{
    position: sticky;
    top: 3.75rem;
    align-self: flex-start;
  }}
}}

/* A job's video: a portrait clip fits the window with its controls in view and leaves room for
   the card's status line, buttons and price (about 27rem); a landscape one fills its column.
   Before the video, the first frame stands in, smaller, so the card's progress fits too. */
[class*="st-key-job-player-"] video {{
  max-height: calc(100vh - 27rem);
  width: auto !important;
  max-width: 100%;
  display: block;
  margin: 0 auto;
}}
[class*="st-key-job-frame-"] img {{
  max-height: 40vh;
  width: auto !important;
  max-width: 100%;
  display: block;
  margin: 0 auto;
}}

/* History: the table on a wide screen, a list without sideways scrolling on a phone. */
.st-key-history-narrow {{ display: none; }}
@media (max-width: {NARROW_MAX_PX}px) {{
  .st-key-history-wide {{ display: none; }}
  .st-key-history-narrow {{ display: flex; }}
}}

/* Compare: two to four clips in a row on a wide screen; on a phone, two a row. */
.st-key-compare-clips video {{
  width: 100% !important;
  max-height: 60vh;
  display: block;
  background: #000;
}}
@media (max-width: {NARROW_MAX_PX}px) {{
  .st-key-compare-clips [data-testid="stHorizontalBlock"] {{
    flex-wrap: wrap !important;
    gap: 0.5rem !important;
  }}
  .st-key-compare-clips [data-testid="stColumn"] {{
    flex: 1 1 calc(50% - 0.5rem) !important;
    min-width: calc(50% - 0.5rem) !important;
    max-width: calc(50% - 0.25rem) !important;
  }}
}}
</style>
"""


def render_app_style() -> None:
    """The app's CSS; first in every run (see the module's note)."""
    st.html(_APP_STYLE)
