"""Decontamination: does the training data overlap a public test set?

``mis-data decontaminate RUN --against PATH`` compares every train and validation image of a
finished run with every image of a benchmark (the released MIS test layout, a Hugging Face
dataset folder or name, or a plain image folder) and every train question with the
benchmark's questions, and files each match with its distances in ``decontamination.json``
(one entry per benchmark). With ``--drop`` the matching samples are rejected (``contaminated``)
and the splits and exports are rewritten, with no model call. A ``decontaminate:`` section in
the build config does the same as the build's last step, before the final splits and exports.

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
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from hashlib import sha256
from pathlib import Path
from typing import Any

import imagehash
from PIL import Image

from mis_data.config import ConfigError, DecontaminateConfig
from mis_data.eval.testsets import hf_tables, image_bytes, mis_files, mis_root, read_array
from mis_data.records import RejectReason, RejectRecord
from mis_data.rundir import RunDir, dump_json, read_json_or_none, write_text_atomic
from mis_data.sources import IMAGE_SUFFIXES
from mis_data.splits import read_splits

STAGE = "decontamination"
REPORT = "decontamination.json"
KINDS = ("mis", "hf", "folder")


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


class FingerprintCache:
    """Perceptual hashes by the image bytes' sha256, kept in the run folder.

    Decoding is nearly all the cost (about 40 images/s for 1024 px PNGs on 2 cores), and a
    build decontaminates on every run, resumed ones included, so each image is hashed once per
    run folder: later passes only read the bytes to find their sha256 (train images not even
    that, their sha256 is their name in the store).
    """

    FILE = "decontamination_fingerprints.json"

    def __init__(self, run: RunDir) -> None:
        self.path = run.path / self.FILE
        stored = read_json_or_none(self.path)
        self.hashes: dict[str, list[str]] = stored if isinstance(stored, dict) else {}
        self.computed = 0

    def of_bytes(self, data: bytes) -> Fingerprint:
        return self.of_sha(sha256(data).hexdigest(), lambda: data)

    def of_sha(self, digest: str, read: Callable[[], bytes]) -> Fingerprint:
        if digest not in self.hashes:
            fingerprint = Fingerprint.of(read())
            self.hashes[digest] = [f"{fingerprint.phash:016x}", f"{fingerprint.dhash:016x}"]
            self.computed += 1
        phash, dhash = self.hashes[digest]
        return Fingerprint(digest, int(phash, 16), int(dhash, 16))

    def save(self) -> None:
        if self.computed:
            write_text_atomic(self.path, dump_json(dict(sorted(self.hashes.items()))))


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


def check_benchmark(against: str, kind: str | None) -> str:
    """The benchmark's kind, after checking that it is there: a folder that does not exist is
    an error, not a Hub name, unless the kind says ``hf`` (a Hub name cannot be checked offline)."""
    if kind is not None and kind not in KINDS:
        raise ConfigError(f"--as {kind!r}: expected mis, hf or folder")
    folder = Path(against)
    if not folder.exists():
        if kind == "hf":
            return kind
        raise ConfigError(f"{against}: benchmark folder not found (a Hub dataset needs --as hf, "
                          "or kind: hf in the config)")
    kind = kind or detect_kind(against)
    if kind in ("mis", "folder") and not folder.is_dir():
        raise ConfigError(f"{against}: benchmark folder not found")
    if kind == "mis" and not mis_files(folder):
        raise ConfigError(f"{against}: no mis_*.json here or in mis_test/ (not a MIS test layout)")
    return kind


def read_benchmark(against: str, kind: str, cache: FingerprintCache) -> Benchmark:
    readers = {"mis": lambda: read_mis(Path(against)), "folder": lambda: read_folder(Path(against)),
               "hf": lambda: read_hf(against)}
    benchmark = Benchmark()
    for name, data, question in readers[kind]():
        if data is not None:
            try:
                benchmark.images[name] = cache.of_bytes(data)
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
                 text_threshold: float, fingerprints: FingerprintCache) -> Report:
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
                cache[ref.sha256] = fingerprints.of_sha(ref.sha256, path.read_bytes)
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


# -- the report and the drops ------------------------------------------------------------

def read_reports(run: RunDir) -> dict[str, dict[str, Any]]:
    """Every benchmark's last result, by its ``against``: one report file for them all."""
    data = read_json_or_none(run.path / REPORT)
    return dict(data.get("benchmarks", {})) if isinstance(data, dict) else {}


def carried_over(previous: dict[str, Any] | None, key: str, already: set[str],
                 found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """This pass's matches plus the earlier ones of samples already dropped for them: a
    dropped sample is no longer in train, so a second pass (a rerun build) cannot see it."""
    new_ids = {m["id"] for m in found}
    kept = [m for m in (previous or {}).get(key, []) if m["id"] in already and m["id"] not in new_ids]
    return sorted(kept + found, key=lambda m: (m["id"], m.get("slot", 0), m["benchmark"]))


def benchmark_key(against: str) -> str:
    """Where a benchmark's result is filed: a local folder by its absolute path, a Hub name as is."""
    return str(Path(against).resolve()) if Path(against).exists() else against


def decontaminate(run_dir: Path | RunDir, against: str, kind: str | None = None, drop: bool = False,
                  drop_text: bool = False, phash_distance: int = 4, dhash_distance: int = 4,
                  text_threshold: float = 0.9) -> dict[str, Any]:
    """Compare, file the result in ``decontamination.json``, and with ``drop`` reject the matches.

    Returns the result, whose ``newly_dropped`` says which samples this pass rejected. The
    build passes its open ``RunDir``, so its view of the rejects stays current.
    """
    run = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
    run.config()
    kind = check_benchmark(against, kind)
    key = benchmark_key(against)
    started = time.perf_counter()
    fingerprints = FingerprintCache(run)
    benchmark = read_benchmark(against, kind, fingerprints)
    hashed = time.perf_counter() - started
    report = find_matches(run, benchmark, phash_distance, dhash_distance, text_threshold,
                          fingerprints)
    fingerprints.save()
    reports = read_reports(run)
    previous = reports.get(key)
    already = {r.id for r in run.rejects() if r.stage == STAGE}
    matches = carried_over(previous, "matches", already, report.matches)
    text_matches = carried_over(previous, "text_matches", already, report.text_matches)
    found = {m["id"] for m in report.matches} | (
        {m["id"] for m in report.text_matches} if drop_text else set())
    newly_dropped = sorted(found - already) if drop else []
    earlier = set((previous or {}).get("dropped", [])) & already
    total = hashed + report.seconds
    result = {
        "against": key, "name": Path(key).name if Path(key).exists() else key, "as": kind,
        "thresholds": {"phash_distance": phash_distance, "dhash_distance": dhash_distance,
                       "text_jaccard": text_threshold},
        "train_images": report.train_images, "benchmark_images": report.benchmark_images,
        "benchmark_questions": len(benchmark.questions),
        "images_per_second": round((report.train_images + report.benchmark_images)
                                   / total, 1) if total else None,
        "images_hashed": fingerprints.computed,  # the rest came from the run's fingerprint file
        "matches": matches, "text_matches": text_matches,
        "dropped": sorted(earlier | set(newly_dropped)),
    }
    reports[key] = result
    write_text_atomic(run.path / REPORT, dump_json({"benchmarks": dict(sorted(reports.items()))}))
    if newly_dropped:
        with run:
            for sample_id in newly_dropped:
                where = next(m for m in report.matches + report.text_matches if m["id"] == sample_id)
                run.reject(RejectRecord(stage=STAGE, id=sample_id, reason=RejectReason.contaminated,
                                        detail=f"matches {where['benchmark']} in {result['name']}"))
    return {**result, "newly_dropped": newly_dropped}


def decontaminate_build(run: RunDir, settings: DecontaminateConfig) -> int:
    """The build step (``decontaminate:`` in the config): every benchmark in turn; how many
    samples were newly dropped, so the build knows whether to split and export again."""
    return sum(len(decontaminate(
        run, bench.path, bench.kind, drop=settings.drop, drop_text=settings.drop_text,
        phash_distance=settings.phash_distance, dhash_distance=settings.dhash_distance,
        text_threshold=settings.text_jaccard)["newly_dropped"]) for bench in settings.against)


def summary(run: RunDir) -> dict[str, dict[str, Any]]:
    """Per benchmark: matches and drops, for the manifest and the dataset card. A benchmark is
    named by its folder's name (no local path in a published card), or ``parent/name`` when two
    share a name (the released ``mis_test`` and a build's own ``export/mis/mis_test``)."""
    results = read_reports(run).values()
    names = Counter(result["name"] for result in results)
    return {(result["name"] if names[result["name"]] == 1 else
             f"{Path(result['against']).parent.name}/{result['name']}"):
            {"as": result["as"], "image_matches": len(result["matches"]),
             "text_matches": len(result["text_matches"]), "dropped": len(result["dropped"])}
            for result in results}
