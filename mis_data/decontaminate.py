"""Decontamination: does the training data overlap a public test set?

``mis-data decontaminate RUN --against PATH`` compares every train and validation image of a
finished run with every image of a benchmark (the released MIS test layout, a Hugging Face
dataset folder or name, or a plain image folder) and every train question with the
benchmark's questions, and writes ``decontamination.json`` with each match and its distances.
With ``--drop`` the matching samples are rejected (``contaminated``) and the splits and exports
are rewritten, with no model call.

An image matches when its bytes are identical, or when both its perceptual hashes (pHash and
dHash, 64 bits each) are within a few bits of a benchmark image: one hash alone confuses images
of similar layout (typography renderings of similar words), both together find re-encoded,
resized or recompressed copies. The pHash comparison uses a multi-index hash (the 64 bits cut
into ``distance + 1`` chunks; two hashes within ``distance`` bits agree exactly on at least one
chunk), so 10,000 × 10,000 images cost one dictionary lookup per chunk, not 10^8 comparisons.
Questions match on word Jaccard over a threshold; MIS questions are templated on purpose, so a
question match alone is only reported, unless ``--drop-text`` asks to drop it too.
"""

from __future__ import annotations

import io
import re
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from hashlib import sha256
from pathlib import Path
from typing import Any

import imagehash
from PIL import Image

from mis_data.config import ConfigError
from mis_data.eval.testsets import hf_tables, image_bytes, mis_files, mis_root, read_array
from mis_data.records import RejectReason, RejectRecord
from mis_data.rundir import RunDir, dump_json, write_text_atomic
from mis_data.sources import IMAGE_SUFFIXES
from mis_data.splits import read_splits

STAGE = "decontamination"
REPORT = "decontamination.json"


@dataclass(frozen=True)
class Fingerprint:
    """What is compared of one image: its bytes' sha256 and two perceptual hashes."""

    sha256: str
    phash: int
    dhash: int

    @classmethod
    def of(cls, data: bytes) -> Fingerprint:
        with Image.open(io.BytesIO(data)) as image:
            image = image.convert("RGB")
            return cls(sha256(data).hexdigest(), int(str(imagehash.phash(image)), 16),
                       int(str(imagehash.dhash(image)), 16))


@dataclass
class Benchmark:
    """The images (name -> fingerprint) and questions (name -> text) of a test set."""

    images: dict[str, Fingerprint] = field(default_factory=dict)
    questions: dict[str, str] = field(default_factory=dict)


# -- reading a benchmark ---------------------------------------------------------------------

def detect_kind(path: str) -> str:
    folder = Path(path)
    if folder.is_dir() and (list(folder.glob("mis_*.json")) or (folder / "mis_test").is_dir()):
        return "mis"
    if folder.is_dir() and not any(folder.rglob("*.parquet")) and not (folder / "README.md").exists():
        return "folder"
    return "hf"


def read_mis(folder: Path) -> Iterator[tuple[str, bytes | None, str | None]]:
    """(name, image bytes, question) from a MIS layout (``mis_test/`` or the folder itself)."""
    root = mis_root(folder)
    for file in mis_files(folder):
        for index, item in enumerate(read_array(file)):
            name = f"{file.stem}[{index}]"
            yield name, None, str(item.get("question", ""))
            for key in ("image_path1", "image_path2", "image_path3", "image_path4"):
                if item.get(key):
                    yield f"{name}.{key}", (root / item[key]).read_bytes(), None


def read_folder(folder: Path) -> Iterator[tuple[str, bytes | None, str | None]]:
    for path in sorted(folder.rglob("*")):
        if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
            yield path.relative_to(folder).as_posix(), path.read_bytes(), None


def read_hf(name: str) -> Iterator[tuple[str, bytes | None, str | None]]:
    """Every config and split of a dataset (local folder or Hub name), images undecoded."""
    for config, split, dataset, columns in hf_tables(name):
        for index, row in enumerate(dataset):
            where = f"{config}/{split}[{index}]"
            if row.get("question"):
                yield where, None, str(row["question"])
            for column in columns:
                for slot, data in enumerate(image_bytes(row[column]), 1):
                    if data:
                        yield f"{where}.{column}{slot}", data, None


def read_benchmark(against: str, kind: str) -> Benchmark:
    readers = {"mis": lambda: read_mis(Path(against)), "folder": lambda: read_folder(Path(against)),
               "hf": lambda: read_hf(against)}
    if kind not in readers:
        raise ConfigError(f"--as {kind!r}: expected mis, hf or folder")
    if kind != "hf" and not Path(against).is_dir():
        raise ConfigError(f"{against}: benchmark folder not found")
    benchmark = Benchmark()
    for name, data, question in readers[kind]():
        if data is not None:
            try:
                benchmark.images[name] = Fingerprint.of(data)
            except OSError:
                continue  # an unreadable benchmark image cannot match anything
        if question:
            benchmark.questions[name] = question
    return benchmark


# -- matching ----------------------------------------------------------------------------------

class HashIndex:
    """Multi-index hashing over 64-bit pHashes: candidates within ``distance`` bits."""

    def __init__(self, fingerprints: dict[str, Fingerprint], distance: int) -> None:
        self.distance = distance
        chunks = distance + 1
        self.cuts = [64 * i // chunks for i in range(chunks + 1)]
        self.tables: list[dict[int, list[str]]] = [defaultdict(list) for _ in range(chunks)]
        self.fingerprints = fingerprints
        self.by_sha = {f.sha256: name for name, f in fingerprints.items()}
        for name, fingerprint in fingerprints.items():
            for table, value in zip(self.tables, self.chunks(fingerprint.phash), strict=True):
                table[value].append(name)

    def chunks(self, value: int) -> list[int]:
        return [(value >> low) & ((1 << (high - low)) - 1)
                for low, high in zip(self.cuts, self.cuts[1:], strict=False)]

    def candidates(self, fingerprint: Fingerprint) -> set[str]:
        found: set[str] = set()
        for table, value in zip(self.tables, self.chunks(fingerprint.phash), strict=True):
            found.update(table.get(value, ()))
        return found


def words(text: str) -> frozenset[str]:
    return frozenset(re.findall(r"[a-z0-9]+", text.casefold()))


def question_matches(train: dict[str, str], benchmark: dict[str, str],
                     threshold: float) -> list[dict[str, Any]]:
    """Train questions whose word Jaccard with a benchmark question reaches ``threshold``.

    Candidates share a word that is rare among the benchmark questions (in at most 2 % of
    them), so templated words ("image", "first") do not pull in every pair.
    """
    postings: dict[str, list[str]] = defaultdict(list)
    bench_words = {name: words(text) for name, text in benchmark.items()}
    for name, tokens in bench_words.items():
        for token in tokens:
            postings[token].append(name)
    rare_limit = max(2, len(benchmark) // 50)
    matches = []
    for sample_id, text in sorted(train.items()):
        tokens = words(text)
        candidates = {name for token in tokens if len(postings.get(token, ())) <= rare_limit
                      for name in postings.get(token, ())}
        best = max(((len(tokens & bench_words[n]) / len(tokens | bench_words[n]), n)
                    for n in candidates), default=(0.0, ""))
        if best[0] >= threshold:
            matches.append({"id": sample_id, "kind": "text", "benchmark": best[1],
                            "jaccard": round(best[0], 3)})
    return matches


@dataclass
class Report:
    matches: list[dict[str, Any]]
    text_matches: list[dict[str, Any]]
    train_images: int
    benchmark_images: int
    seconds: float


def find_matches(run: RunDir, benchmark: Benchmark, phash_distance: int, dhash_distance: int,
                 text_threshold: float) -> Report:
    started = time.perf_counter()
    splits = read_splits(run)
    samples = splits.get("train", []) + splits.get("val", [])
    index = HashIndex(benchmark.images, phash_distance)
    store = run.images_dir
    cache: dict[str, Fingerprint] = {}
    matches = []
    for sample in samples:
        for slot, ref in enumerate(sample.images, start=1):
            if ref.sha256 not in cache:
                path = store / ref.sha256[:2] / f"{ref.sha256}.png"
                cache[ref.sha256] = Fingerprint.of(path.read_bytes())
            mine = cache[ref.sha256]
            for name in sorted(index.candidates(mine) | ({index.by_sha[ref.sha256]}
                                                          if ref.sha256 in index.by_sha else set())):
                theirs = benchmark.images[name]
                p = bin(mine.phash ^ theirs.phash).count("1")
                d = bin(mine.dhash ^ theirs.dhash).count("1")
                exact = mine.sha256 == theirs.sha256
                if exact or (p <= phash_distance and d <= dhash_distance):
                    matches.append({"id": sample.id, "split": sample.split, "slot": slot,
                                    "kind": "image", "benchmark": name, "exact": exact,
                                    "phash_distance": p, "dhash_distance": d})
    text = question_matches({s.id: s.question for s in samples}, benchmark.questions,
                            text_threshold)
    return Report(matches, text, len(cache), len(benchmark.images),
                  time.perf_counter() - started)


def decontaminate(run_dir: Path, against: str, kind: str | None = None, drop: bool = False,
                  drop_text: bool = False, phash_distance: int = 4, dhash_distance: int = 4,
                  text_threshold: float = 0.9) -> dict[str, Any]:
    """Compare, write ``decontamination.json``, and with ``drop`` reject the matches."""
    run = RunDir(run_dir)
    run.config()
    kind = kind or detect_kind(against)
    started = time.perf_counter()
    benchmark = read_benchmark(against, kind)
    hashed = time.perf_counter() - started
    report = find_matches(run, benchmark, phash_distance, dhash_distance, text_threshold)
    dropped = sorted({m["id"] for m in report.matches}
                     | ({m["id"] for m in report.text_matches} if drop_text else set()))
    total = hashed + report.seconds
    result = {
        "against": against, "as": kind,
        "thresholds": {"phash_distance": phash_distance, "dhash_distance": dhash_distance,
                       "text_jaccard": text_threshold},
        "train_images": report.train_images, "benchmark_images": report.benchmark_images,
        "benchmark_questions": len(benchmark.questions),
        "images_per_second": round((report.train_images + report.benchmark_images)
                                   / total, 1) if total else None,
        "matches": report.matches, "text_matches": report.text_matches,
        "dropped": dropped if drop else [],
    }
    write_text_atomic(run.path / REPORT, dump_json(result))
    if drop and dropped:
        with run:
            for sample_id in dropped:
                where = next(m for m in report.matches + report.text_matches if m["id"] == sample_id)
                run.reject(RejectRecord(stage=STAGE, id=sample_id, reason=RejectReason.contaminated,
                                        detail=f"matches {where['benchmark']} in {against}"))
    return result
