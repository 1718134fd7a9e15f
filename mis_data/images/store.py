"""The content-addressed image store: every image normalized once, stored by its sha256.

Normalizing (EXIF orientation applied, RGB, longest side capped, PNG) happens before hashing, so
the same picture from two sources is stored once and records refer to it by hash. Anything
Pillow cannot turn into a sane RGB image raises ``BadImage`` with a short reason, which the
calling stage records as a reject instead of crashing.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from mis_data.core.rundir import write_bytes_atomic

PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"


class BadImage(Exception):
    """An input image that cannot be used; the message is the one-line reason."""


@dataclass(frozen=True)
class StoredImage:
    """Where a stored image is and its size after normalizing; records keep only ``sha256``."""

    sha256: str
    width: int
    height: int
    path: Path


MAX_PIXELS = 64_000_000


@contextmanager
def decoded(data: bytes, max_pixels: int = MAX_PIXELS) -> Iterator[Image.Image]:
    """The image in ``data``, open for reading; anything Pillow cannot read safely (no bytes,
    a decompression bomb, more than ``max_pixels``, a broken file), at opening or while the
    caller reads it, raises ``BadImage`` with a one-line reason. The store and the
    decontamination fingerprints share it, so both refuse the same files for the same reason."""
    if not data:
        raise BadImage("empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                if image.width * image.height > max_pixels:
                    raise BadImage(
                        f"too large: {image.width}x{image.height} pixels exceeds {max_pixels}"
                    )
                yield image
    except BadImage:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise BadImage(f"decompression bomb: {error}") from None
    except UnidentifiedImageError:
        raise BadImage("not an image Pillow can read") from None
    except (OSError, ValueError, SyntaxError) as error:
        raise BadImage(f"unreadable image: {error}") from None


def normalize_image(data: bytes, max_side: int, max_pixels: int = MAX_PIXELS) -> bytes:
    """Decode, orient, convert to RGB, cap the longest side, and encode as PNG."""
    with decoded(data, max_pixels) as image:
        image.seek(0)  # animated images: the first frame only
        image.load()
        image = _to_rgb(ImageOps.exif_transpose(image))
    if max(image.size) > max_side:
        image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


def _to_rgb(image: Image.Image) -> Image.Image:
    """RGB with transparency flattened on white; 16-bit and CMYK converted faithfully."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        image = image.point(lambda value: value / 256).convert("L")
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(image, mask=image.getchannel("A"))
        return background
    return image.convert("RGB")


class ImageStore:
    """Normalized PNGs under ``images/ab/<sha256>.png``."""

    def __init__(self, root: Path, max_side: int = 1024, max_pixels: int = MAX_PIXELS) -> None:
        self.root = Path(root)
        self.max_side = max_side
        self.max_pixels = max_pixels
        # Perceptual hashes (``fingerprint.phash_hex``) of images stored by this process whose
        # pixels the caller had at hand, by sha256: dedup reads them instead of decoding again.
        self.phashes: dict[str, str] = {}

    def path_for(self, sha256: str) -> Path:
        """Where the image with this hash is kept (or would be); the file may not exist."""
        return self.root / sha256[:2] / f"{sha256}.png"

    def put(self, data: bytes) -> StoredImage:
        """Normalize and store image bytes; storing the same content twice is free."""
        png = normalize_image(data, self.max_side, self.max_pixels)
        return self.put_png(png)

    def put_png(self, png: bytes, phash: str | None = None) -> StoredImage:
        """Store bytes that are already a normalized PNG (e.g. the typography renderer's);
        ``phash`` is the caller's perceptual hash of the same pixels, kept in ``phashes``."""
        sha256 = hashlib.sha256(png).hexdigest()
        if phash is not None:
            self.phashes[sha256] = phash
        path = self.path_for(sha256)
        if not path.exists() or path.stat().st_size != len(png):
            write_bytes_atomic(path, png)
        with Image.open(io.BytesIO(png)) as image:
            width, height = image.size
        return StoredImage(sha256=sha256, width=width, height=height, path=path)

    def read(self, sha256: str) -> bytes:
        """The stored PNG's bytes; raises ``FileNotFoundError`` for a hash never stored."""
        return self.path_for(sha256).read_bytes()

    def looks_complete(self, sha256: str) -> bool:
        """Cheap check (no hashing): the file exists and ends with PNG's IEND chunk.

        Writes are atomic, so only outside damage (a truncated copy, a deleted file) fails it.
        """
        path = self.path_for(sha256)
        try:
            with open(path, "rb") as handle:
                handle.seek(-12, 2)
                return handle.read(12) == PNG_END
        except OSError:
            return False

    def verify(self, sha256: str) -> bool:
        """True when the stored file exists and still has the content its name promises."""
        path = self.path_for(sha256)
        return path.exists() and hashlib.sha256(path.read_bytes()).hexdigest() == sha256
