"""Thumbnails for the gallery: a JPEG of at most 256 px per image, named by its sha256.

Made once (a rerun only makes the missing ones) and in threads, since a MIS-scale run has
thousands of images and Pillow decodes outside the GIL.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote

from PIL import Image

from mis_data.core.records import ImageRef
from mis_data.core.rundir import RunDir, write_bytes_atomic
from mis_data.images.store import ImageStore

THUMB_SIDE = 256
THUMBS = "thumbs"


def make_thumbnail(source: Path, target: Path) -> bool:
    """Returns False when the source cannot be read, so the card says so instead of failing."""
    if target.exists():
        return True
    try:
        with Image.open(source) as image:
            image.thumbnail((THUMB_SIDE, THUMB_SIDE))
            buffer = io.BytesIO()
            image.convert("RGB").save(buffer, format="JPEG", quality=85)
    except (OSError, ValueError):
        return False
    write_bytes_atomic(target, buffer.getvalue())
    return True


def href(path: Path, start: Path) -> str:
    """``path`` relative to ``start`` as a URL-quoted reference the page can use from ``file://``."""
    return quote(Path(os.path.relpath(path, start)).as_posix())


def make_thumbnails(run: RunDir, refs: Iterable[ImageRef], folder: Path
                    ) -> tuple[dict[str, str], dict[str, str]]:
    """Thumbnail and full-size hrefs (relative to ``folder``) of every image that exists."""
    store = ImageStore(run.images_dir)
    shas = sorted({ref.sha256 for ref in refs})

    def one(sha: str) -> tuple[str, bool]:
        source = store.path_for(sha)
        return sha, source.exists() and make_thumbnail(source, folder / THUMBS / f"{sha}.jpg")

    with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 2) * 2)) as pool:
        made = dict(pool.map(one, shas))
    thumbs = {sha: href(folder / THUMBS / f"{sha}.jpg", folder) for sha in shas if made[sha]}
    full = {sha: href(store.path_for(sha), folder) for sha in shas if made[sha]}
    return thumbs, full
