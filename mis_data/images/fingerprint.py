"""The perceptual hash (pHash) the near-duplicate filter compares images by.

It lives with the images, not with dedup, so that a stage holding an image's pixels (the
typography renderer's picture) can hash them there and then: dedup would otherwise decode the
stored PNG again only to hash it. PNG is lossless, so both give the same hash.
"""

from __future__ import annotations

import imagehash
from PIL import Image


def phash_hex(image: Image.Image) -> str:
    """One image's perceptual hash as hex (``imagehash.phash``, 64 bits)."""
    return str(imagehash.phash(image))
