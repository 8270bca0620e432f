"""What fetching a pasted link gives: the image's bytes or a refusal, and the size it may have.

Kept apart from ``studio.linkfetch`` (the guard itself, which needs ``requests``), so that the
Generate page can catch a refusal and show the limit without importing an HTTP client first.
"""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_MAX_BYTES = 30 * 1024 * 1024


class LinkRejected(Exception):
    """A link that was not fetched; its text says why in words a user can act on."""


class LinkUnreachable(LinkRejected):
    """The link's server could not be found or reached; trying again later may work."""


class LinkTooSlow(LinkRejected):
    """The whole fetch took longer than its deadline."""


@dataclass(frozen=True)
class FetchedImage:
    """The bytes behind a link and where they finally came from."""

    data: bytes = field(repr=False)
    content_type: str | None
    final_url: str
