"""Decontamination speed at 10,000 x 10,000 images: fingerprinting and the hash index.

Prints images/s for fingerprinting (sha256 + pHash + dHash of PNG bytes, the dominant cost),
the time to build the multi-index over the benchmark's pHashes, and queries/s of the train side
against it, with the number of candidate pairs checked (an index, not all 10^8 pairs).

    python scripts/bench_decontaminate.py [--n 10000] [--side 128]
"""

from __future__ import annotations

import argparse
import io
import random
import sys
import time
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from mis_data.pipeline.decontaminate import Fingerprint, HashIndex  # noqa: E402


def png(seed: int, side: int) -> bytes:
    rng = random.Random(seed)
    small = Image.frombytes("RGB", (8, 8), rng.randbytes(192)).resize((side, side), Image.BICUBIC)
    buffer = io.BytesIO()
    small.save(buffer, format="PNG")
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--side", type=int, default=128)
    args = parser.parse_args()
    images = [png(seed, args.side) for seed in range(2 * args.n)]
    started = time.perf_counter()
    prints = [Fingerprint.of(data) for data in images]
    hashing = time.perf_counter() - started
    bench = {f"b{i}": fp for i, fp in enumerate(prints[args.n:])}
    started = time.perf_counter()
    index = HashIndex(bench, distance=4)
    building = time.perf_counter() - started
    started = time.perf_counter()
    candidates = matches = 0
    for mine in prints[:args.n]:
        found = index.candidates(mine)
        candidates += len(found)
        matches += sum(1 for name in found if bin(mine.phash ^ bench[name].phash).count("1") <= 4
                       and bin(mine.dhash ^ bench[name].dhash).count("1") <= 4)
    querying = time.perf_counter() - started
    total = hashing + building + querying
    print(f"{args.n} train x {args.n} benchmark images of {args.side}x{args.side}")
    print(f"fingerprinting: {2 * args.n / hashing:,.0f} images/s ({hashing:.1f} s)")
    print(f"index build: {building:.2f} s; queries: {args.n / querying:,.0f}/s ({querying:.2f} s), "
          f"{candidates:,} candidate pairs checked of {args.n * args.n:,}, {matches} matches")
    print(f"end to end: {2 * args.n / total:,.0f} images/s ({total:.1f} s)")


if __name__ == "__main__":
    main()
