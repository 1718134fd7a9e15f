"""The image store normalizes every kind of input image or refuses it with a one-line reason."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from mis_data.images.store import BadImage, ImageStore, normalize_image


def encode(image: Image.Image, fmt: str = "PNG", **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def decoded(png: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(png))
    image.load()
    return image


@pytest.mark.parametrize("image", [
    Image.new("CMYK", (40, 30), (0, 128, 0, 0)),
    Image.new("I;16", (40, 30), 40000),
    Image.new("P", (40, 30), 3),
    Image.new("RGBA", (40, 30), (255, 0, 0, 0)),
    Image.new("LA", (40, 30), (100, 255)),
    Image.new("1", (40, 30), 1),
], ids=["cmyk", "16bit", "palette", "rgba", "la", "bilevel"])
def test_every_mode_becomes_rgb_png(image: Image.Image) -> None:
    fmt = "JPEG" if image.mode == "CMYK" else "PNG"
    result = decoded(normalize_image(encode(image, fmt), max_side=1024))
    assert result.format == "PNG" and result.mode == "RGB" and result.size == (40, 30)


def test_exif_rotation_is_applied() -> None:
    image = Image.new("RGB", (60, 20), (200, 10, 10))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    result = decoded(normalize_image(encode(image, "JPEG", exif=exif), max_side=1024))
    assert result.size == (20, 60)


def test_animated_images_keep_the_first_frame() -> None:
    frames = [Image.new("P", (30, 30), color) for color in (1, 2, 3)]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    assert decoded(normalize_image(data, max_side=1024)).size == (30, 30)


def test_large_images_are_capped() -> None:
    result = decoded(normalize_image(encode(Image.new("RGB", (3000, 1500))), max_side=1024))
    assert result.size == (1024, 512)


@pytest.mark.parametrize(("data", "reason"), [
    (b"", "empty"),
    (b"this is not an image at all", "not an image"),
    (encode(Image.new("RGB", (64, 64), (1, 2, 3)))[:60], "unreadable"),
])
def test_broken_inputs_raise_bad_image(data: bytes, reason: str) -> None:
    with pytest.raises(BadImage, match=reason):
        normalize_image(data, max_side=1024)


def test_decompression_bombs_are_refused() -> None:
    bomb = encode(Image.new("1", (12000, 12000)))
    with pytest.raises(BadImage, match="too large|decompression"):
        normalize_image(bomb, max_side=1024, max_pixels=50_000_000)


def test_content_addressing_stores_once(tmp_path: Path) -> None:
    store = ImageStore(tmp_path)
    data = encode(Image.new("RGB", (10, 10), (9, 9, 9)))
    first, second = store.put(data), store.put(data)
    assert first == second and first.path == tmp_path / first.sha256[:2] / f"{first.sha256}.png"
    assert len(list(tmp_path.rglob("*.png"))) == 1 and store.verify(first.sha256)
    first.path.write_bytes(b"damaged")
    assert not store.verify(first.sha256)
