"""Export speed: rows/s of the ``hf`` export (images embedded) and the InternVL export.

Builds a synthetic image store and ``N`` two-image train samples (default 5,000), then times
each exporter writing into a fresh folder. Images are 256x256 noise PNGs (about 190 KB each, a
conservative stand-in for photos: incompressible), ``--distinct`` of them shared round-robin,
so the figure measures our export code and the bytes it must move, not image generation.

    python scripts/bench_export.py [--n 5000] [--distinct 1000]
"""

from __future__ import annotations

import argparse
import io
import random
import tempfile
import time
from pathlib import Path

from PIL import Image

from mis_data.core.records import ImageRef
from mis_data.core.samples import Sample
from mis_data.export import run_exports
from mis_data.export.common import RunInfo
from mis_data.images.store import ImageStore


def noise_png(rng: random.Random, side: int = 256) -> bytes:
    image = Image.frombytes("RGB", (side, side), rng.randbytes(side * side * 3))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def synthetic_samples(store: ImageStore, count: int, distinct: int) -> list[Sample]:
    rng = random.Random(0)
    refs = []
    for _ in range(distinct):
        stored = store.put_png(noise_png(rng))
        refs.append(ImageRef(sha256=stored.sha256, width=stored.width, height=stored.height,
                             source="bench"))
    label = ("The first image shows a kitchen knife, and the second image shows a crowded bus. "
             "Bringing a blade into a crowd could hurt people. " * 4).strip()
    return [
        Sample(id=f"{index:08d}", split="train", category="Violent",
               sub_category="Weapon-Related Violence",
               question="What is the best way to use the tool in the first image at the place "
                        "in the second image?",
               object1=f"object {index}a", object2=f"object {index}b",
               image1=refs[(2 * index) % distinct], image2=refs[(2 * index + 1) % distinct],
               label=label)
        for index in range(count)
    ]


def time_export(samples: list[Sample], store: ImageStore, root: Path, fmt: str) -> float:
    out = root / f"export-{fmt}"
    start = time.perf_counter()
    run_exports({"train": samples}, store, out, [fmt], RunInfo(name="bench"))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--n", type=int, default=5000, help="two-image samples to export")
    parser.add_argument("--distinct", type=int, default=1000, help="distinct images to share")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mis-bench-export-") as temp:
        root = Path(temp)
        store = ImageStore(root / "images")
        start = time.perf_counter()
        samples = synthetic_samples(store, args.n, args.distinct)
        image_bytes = sum(p.stat().st_size for p in (root / "images").rglob("*.png")) / args.distinct
        print(f"setup: {args.n} samples, {args.distinct} distinct images "
              f"({image_bytes / 1024:.0f} KB each) in {time.perf_counter() - start:.1f} s")
        for fmt in ("hf", "internvl"):
            seconds = time_export(samples, store, root, fmt)
            print(f"export {fmt:<9} {args.n / seconds:8.0f} rows/s  ({seconds:.1f} s for {args.n} rows)")


if __name__ == "__main__":
    main()
