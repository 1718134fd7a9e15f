"""Placing stored images in an export, and hashing the export for the manifest.

``place_image`` tries the hard link first and makes the folder or removes an old file only when
the link fails; ``exported_files`` reads a file once for all its hard links. Both must give what
the plain way gives: the image's bytes at every place, and every file's own hash.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from mis_data.export.common import place_image
from mis_data.images.store import ImageStore
from mis_data.images.typography import render_typography
from mis_data.pipeline.manifest import exported_files


def test_images_land_in_new_folders_over_old_files_and_as_links(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "images")
    first = store.put_png(render_typography("crowbar", "a", 64))
    second = store.put_png(render_typography("jewelry store", "b", 64))
    out = tmp_path / "export"
    place_image(store, first.sha256, out / "x" / "1" / "object1.png")  # folders made
    place_image(store, second.sha256, out / "x" / "1" / "object2.png")  # folder there
    place_image(store, first.sha256, out / "x" / "1" / "object2.png")  # an old file replaced
    for name in ("object1.png", "object2.png"):
        placed = out / "x" / "1" / name
        assert placed.read_bytes() == first.path.read_bytes()
        assert os.stat(placed).st_ino == os.stat(first.path).st_ino
    # The replaced file was unlinked, not written through: the second image is unchanged.
    assert hashlib.sha256(second.path.read_bytes()).hexdigest() == second.sha256


def test_every_exported_file_has_its_own_hash_links_read_once(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "images")
    stored = [store.put_png(render_typography(text, text, 64)) for text in ("crowbar", "safe")]
    out = tmp_path / "export"
    for folder in ("a", "b"):
        for index, image in enumerate(stored, start=1):
            place_image(store, image.sha256, out / folder / f"object{index}.png")
    (out / "a" / "rows.json").write_text("[1]\n")
    (out / "b" / "rows.json").write_text("[2]\n")  # same size, other bytes
    (out / "a" / "copy.png").write_bytes(stored[1].path.read_bytes())  # same bytes, own inode
    (out / ".partial").mkdir()
    (out / ".partial" / "hidden.png").write_bytes(b"x")
    (out / "a" / "broken.png").symlink_to(tmp_path / "nowhere.png")
    files = exported_files(out)
    assert files == {path.relative_to(out).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
                     for path in out.rglob("*") if path.is_file() and ".partial" not in path.parts}
    assert files["a/object1.png"] == files["b/object1.png"] == stored[0].sha256
    assert files["a/object2.png"] == files["b/object2.png"] == files["a/copy.png"] == stored[1].sha256
    assert files["a/rows.json"] != files["b/rows.json"]
    assert "a/broken.png" not in files
