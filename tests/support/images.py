"""Small stored images for client tests: what a request's image parts point to."""

from __future__ import annotations

import io

from PIL import Image

from mis_data.images.store import ImageStore


def two_stored_images(store: ImageStore) -> list[str]:
    """The sha256 of a red and a blue 40x30 PNG, put in ``store``."""
    shas = []
    for color in ((200, 0, 0), (0, 0, 200)):
        buffer = io.BytesIO()
        Image.new("RGB", (40, 30), color).save(buffer, format="PNG")
        shas.append(store.put(buffer.getvalue()).sha256)
    return shas
