"""Image hosts: how a prepared first frame becomes the gateway's ``img_url``."""

from __future__ import annotations

import base64

from studio.imagehost import DataUriHost, ImageHost, data_uri
from tests.plugins.images import jpeg, prepare_image, rgba_png


def test_data_uri_host_inlines_the_exact_bytes_with_their_mime_type() -> None:
    prepared = prepare_image(jpeg(640, 480))
    url = DataUriHost().url_for(prepared)
    header, _, payload = url.partition(",")
    assert header == "data:image/jpeg;base64"
    assert base64.b64decode(payload, validate=True) == prepared.data


def test_data_uri_carries_the_prepared_bytes_not_the_original() -> None:
    original = rgba_png(640, 480)
    prepared = prepare_image(original)
    url = DataUriHost().url_for(prepared)
    assert url.startswith("data:image/png;base64,")
    assert base64.b64decode(url.split(",", 1)[1]) == prepared.data != original


def test_data_uri_host_satisfies_the_image_host_protocol() -> None:
    assert isinstance(DataUriHost(), ImageHost)


def test_data_uri_encodes_any_bytes() -> None:
    assert data_uri(b"\x00\xffBM", "image/bmp") == "data:image/bmp;base64,AP9CTQ=="
