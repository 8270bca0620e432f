"""How a prepared frame becomes the URL the gateway reads it from (``img_url``, ``last_frame_url``).

Callers hold an `ImageHost` and ask it for a URL; they never build one themselves. The default,
`DataUriHost`, inlines the bytes as a ``data:`` URI, which needs no storage but depends on the
gateway forwarding data URIs. A host that uploads to a public bucket (S3-compatible) can be added
beside it by implementing the same one method.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from studio.images import PreparedImage


@runtime_checkable
class ImageHost(Protocol):
    """Turns a prepared image into a URL the gateway can read."""

    def url_for(self, image: PreparedImage) -> str:
        """Return a URL (``https://...`` or ``data:...``) that yields exactly ``image.data``."""
        ...


def data_uri(data: bytes, mime: str) -> str:
    """Encode bytes as a ``data:{mime};base64,...`` URI."""
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


class DataUriHost:
    """Sends the image inline as a ``data:`` URI; nothing is uploaded anywhere."""

    def url_for(self, image: PreparedImage) -> str:
        """Return the image as a base64 ``data:`` URI with its MIME type."""
        return data_uri(image.data, image.mime)
