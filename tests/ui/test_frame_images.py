"""The Generate page with first frames that once broke it: odd colour modes and huge images."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from tests.plugins.images import gray16_png, webp_claiming
from tests.ui.conftest import texts, upload


def test_a_wide_sixteen_bit_grey_png_is_previewed_and_fixed(app: AppTest) -> None:
    upload(app, gray16_png(3000, 1700), name="scan.png", mime="image/png")
    assert not app.exception
    said = texts(app)
    assert "It uses 16 or more bits per colour; the video service needs 8." in said
    assert len(app.get("image")) == 1  # the preview

    app.button(key="gen.image.fix").click().run()
    assert not app.exception
    assert "Converted 16-bit colour to 8-bit" in texts(app)


def test_a_tiny_file_declaring_a_huge_image_is_refused_in_plain_words(app: AppTest) -> None:
    upload(app, webp_claiming(16383, 4880), name="small.webp", mime="image/webp")
    assert not app.exception
    assert [error.value for error in app.error] == [
        "This image is 16383 × 4880 pixels (79.9 megapixels); the largest we can work with is "
        "50 megapixels. Please use a smaller image."
    ]
