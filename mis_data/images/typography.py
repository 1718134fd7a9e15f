"""The typography renderer: an object's name drawn on a plain background.

This is the offline image source (and a fallback for real builds without an image model): it
needs no network, is deterministic for a given style seed, and uses the FreeType font that ships
inside Pillow, so the same inputs give the same PNG bytes on every machine with the same Pillow.
"""

from __future__ import annotations

import hashlib
import io
import textwrap

from PIL import Image, ImageDraw, ImageFont

# Muted backgrounds with dark text, chosen for legibility; picked per image by a seeded hash.
PALETTE = [
    ((244, 241, 234), (33, 37, 41)),
    ((230, 238, 245), (20, 40, 70)),
    ((236, 245, 233), (25, 60, 30)),
    ((248, 236, 236), (90, 20, 25)),
    ((240, 236, 248), (50, 30, 80)),
    ((250, 244, 225), (80, 55, 10)),
]


def render_typography(text: str, style_seed: str, size: int = 512) -> bytes:
    """Render ``text`` centred on a ``size`` x ``size`` PNG; ``style_seed`` picks the colours."""
    return encode_png(typography_image(text, style_seed, size))


def typography_image(text: str, style_seed: str, size: int = 512) -> Image.Image:
    """The picture ``render_typography`` encodes, for a caller that also reads its pixels (the
    images stage takes its perceptual hash here instead of decoding the PNG again)."""
    digest = hashlib.sha256(style_seed.encode("utf-8")).digest()
    background, ink = PALETTE[digest[0] % len(PALETTE)]
    image = Image.new("RGB", (size, size), background)
    draw = ImageDraw.Draw(image)
    margin = size // 10
    font_size = size // 8
    while True:
        font = ImageFont.load_default(size=font_size)
        width_chars = max(6, int((size - 2 * margin) / (font_size * 0.55)))
        lines = textwrap.wrap(text, width=width_chars, break_long_words=False) or [text]
        boxes = [draw.textbbox((0, 0), line, font=font) for line in lines]
        widest = max(box[2] - box[0] for box in boxes)
        line_height = int(font_size * 1.25)
        total_height = line_height * len(lines)
        if (widest <= size - 2 * margin and total_height <= size - 2 * margin) or font_size <= 12:
            break
        font_size = int(font_size * 0.9)
    top = (size - total_height) // 2
    for index, (line, box) in enumerate(zip(lines, boxes, strict=True)):
        left = (size - (box[2] - box[0])) // 2 - box[0]
        draw.text((left, top + index * line_height), line, font=font, fill=ink)
    border = max(2, size // 128)
    draw.rectangle([border, border, size - border - 1, size - border - 1], outline=ink, width=border)
    return image


def encode_png(image: Image.Image) -> bytes:
    """The image as PNG bytes, encoded as every typography image is (no optimize pass)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()
