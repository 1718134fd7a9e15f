"""A typography image's pHash taken from its pixels is the one dedup would take from its file.

The images stage hashes each typography picture while it has it (``ImageStore.phashes``), so
dedup does not decode the PNG again. That is only right if both ways give the same hash, and
each image keeps its own.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mis_data.core.pool import ThreadMapper
from mis_data.images.fingerprint import phash_hex
from mis_data.images.store import ImageStore
from mis_data.images.typography import encode_png, render_typography, typography_image
from mis_data.stages import dedup


@pytest.mark.parametrize("size", [64, 512])
def test_the_hash_from_the_pixels_is_the_hash_from_the_stored_file(tmp_path: Path,
                                                                  size: int) -> None:
    store = ImageStore(tmp_path)
    taken = {}
    for text, seed in (("crowbar", "0:a.1"), ("jewelry store window at night", "0:a.2"),
                       ("crowbar", "0:b.1"), ("used syringe", "0:c.1")):
        image = typography_image(text, seed, size)
        png = encode_png(image)
        assert png == render_typography(text, seed, size)
        stored = store.put_png(png, phash=phash_hex(image))
        taken[stored.sha256] = store.phashes[stored.sha256]
        assert taken[stored.sha256] == dedup.phash_hex(stored.path)
    assert len(taken) >= 3  # two seeds may pick the same colours
    assert len(set(taken.values())) > 1  # different pictures, different hashes


def test_dedup_uses_the_hash_the_store_was_given(tmp_path: Path) -> None:
    store = ImageStore(tmp_path)
    stored = store.put_png(render_typography("crowbar", "0:a.1", 64))
    assert store.phashes == {}  # nothing given, nothing kept: dedup decodes the file
    paths = {stored.sha256: stored.path}
    known = {stored.sha256: "ffffffffffffffff"}
    assert str(dedup.image_hashes(paths, dict(known), ThreadMapper())[stored.sha256]) == "ffffffffffffffff"
    assert str(dedup.image_hashes(paths, {}, ThreadMapper())[stored.sha256]) == dedup.phash_hex(stored.path)
