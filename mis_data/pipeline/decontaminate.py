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

import re
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from hashlib import sha256
from itertools import islice
from pathlib import Path
from typing import Any, NamedTuple

import imagehash

from mis_data.benchmarks import hf_tables, image_bytes, mis_files, mis_root, read_array
from mis_data.core.config import ConfigError, DecontaminateConfig
from mis_data.core.pool import Mapper, ThreadMapper
from mis_data.core.records import LateStep, RejectReason, RejectRecord
from mis_data.core.rundir import RunDir, dump_json, read_json_or_none, write_text_atomic
from mis_data.core.samples import read_splits
from mis_data.images.sources import IMAGE_SUFFIXES
from mis_data.images.store import BadImage, decoded
from mis_data.stages.base import record_decided_rejects

STAGE = LateStep.decontamination.value
REPORT = "decontamination.json"
KINDS = ("mis", "hf", "folder")
IMAGE_KEYS = ("image_path1", "image_path2", "image_path3", "image_path4")


@dataclass(frozen=True)
class Fingerprint:
    """What is compared of one image: its bytes' sha256 and two perceptual hashes."""

    sha256: str
    phash: int
    dhash: int

    @classmethod
    def of(cls, data: bytes) -> Fingerprint:
        """The fingerprint of image bytes; ``BadImage`` (with the reason) for what the image
        store would refuse too: no bytes, a decompression bomb, a file Pillow cannot read."""
        with decoded(data) as image:
            image = image.convert("RGB")
        return cls(sha256(data).hexdigest(), int(str(imagehash.phash(image)), 16),
                   int(str(imagehash.dhash(image)), 16))


def fingerprint_or_problem(data: bytes) -> Fingerprint | str:
    """``Fingerprint.of``, with the reason as text for an image that cannot be read (what a
    worker thread or Ray task hands back)."""
    try:
        return Fingerprint.of(data)
    except BadImage as error:
        return str(error)


FILL_CHUNK = 64  # images read into memory at once while hashing in parallel


class FingerprintCache:
    """Perceptual hashes by the image bytes' sha256, kept in the run folder.

    Decoding is nearly all the cost (about 40 images/s for 1024 px PNGs on 2 cores), and a
    build decontaminates on every run, resumed ones included, so each image is hashed once per
    run folder: later passes only read the bytes to find their sha256 (train images not even
    that, their sha256 is their name in the store).
    """

    FILE = "decontamination_fingerprints.json"

    def __init__(self, run: RunDir, mapper: Mapper | None = None) -> None:
        self.path = run.path / self.FILE
        stored = read_json_or_none(self.path)
        self.hashes: dict[str, list[str]] = stored if isinstance(stored, dict) else {}
        self.problems: dict[str, str] = {}  # sha256 -> why the image cannot be read
        self.computed = 0
        self.mapper = mapper or ThreadMapper()

    def fill(self, wanted: Iterable[tuple[str, Callable[[], bytes]]]) -> None:
        """Hash, side by side (``mapper``: threads, or Ray tasks on a cluster), every image of
        ``wanted`` (sha256, how to read its bytes) that the cache does not hold; ``of_sha``
        then finds them. Read ``FILL_CHUNK`` images at a time, so memory stays bounded."""
        missing = list(dict(item for item in wanted if item[0] not in self.hashes).items())
        for start in range(0, len(missing), FILL_CHUNK):
            chunk = missing[start:start + FILL_CHUNK]
            results = self.mapper.map(fingerprint_or_problem, [read() for _, read in chunk])
            for (digest, _), result in zip(chunk, results, strict=True):
                if isinstance(result, str):
                    self.problems[digest] = result
                    continue
                self.hashes[digest] = [f"{result.phash:016x}", f"{result.dhash:016x}"]
                self.computed += 1

    def of_bytes(self, data: bytes) -> Fingerprint:
        """The fingerprint of an image given by its bytes (a benchmark image), hashed only when its sha256
        is new to the cache."""
        return self.of_sha(sha256(data).hexdigest(), lambda: data)

    def of_sha(self, digest: str, read: Callable[[], bytes]) -> Fingerprint:
        """The fingerprint of the image whose sha256 is ``digest``; ``read`` is called for its bytes only
        when the cache has no entry. Raises ``BadImage`` for bytes that cannot be decoded."""
        if digest in self.problems:
            raise BadImage(self.problems[digest])
        if digest not in self.hashes:
            fingerprint = Fingerprint.of(read())
            self.hashes[digest] = [f"{fingerprint.phash:016x}", f"{fingerprint.dhash:016x}"]
            self.computed += 1
        phash, dhash = self.hashes[digest]
        return Fingerprint(digest, int(phash, 16), int(dhash, 16))

    def save(self) -> None:
        """Write the cache back, atomically, only when this run hashed something new."""
        if self.computed:
            write_text_atomic(self.path, dump_json(dict(sorted(self.hashes.items()))))


@dataclass
class Benchmark:
    """The images (name -> fingerprint) and questions (name -> text) of a test set, and the
    images that could not be read (name -> why): skipped, counted and reported, never fatal."""

    images: dict[str, Fingerprint] = field(default_factory=dict)
    questions: dict[str, str] = field(default_factory=dict)
    unreadable: dict[str, str] = field(default_factory=dict)


class Entry(NamedTuple):
    """One thing a benchmark holds: an image (its bytes), a question, or an image that cannot
    be read (``problem`` says why)."""

    name: str
    data: bytes | None
    question: str | None
    problem: str | None = None


# -- reading a benchmark ---------------------------------------------------------------------

def detect_kind(path: str) -> str:
    """A benchmark's kind from its layout: ``mis`` (MIS test files), ``folder`` (plain images, no dataset
    files), else ``hf``."""
    folder = Path(path)
    if folder.is_dir() and (list(folder.glob("mis_*.json")) or (folder / "mis_test").is_dir()):
        return "mis"
    if folder.is_dir() and not any(folder.rglob("*.parquet")) and not (folder / "README.md").exists():
        return "folder"
    return "hf"


def read_mis(folder: Path) -> Iterator[Entry]:
    """Questions and images from a MIS layout (``mis_test/`` or the folder itself)."""
    root = mis_root(folder)
    for file in mis_files(folder):
        for index, item in enumerate(read_array(file)):
            name = f"{file.stem}[{index}]"
            yield Entry(name, None, str(item.get("question", "")))
            for key in IMAGE_KEYS:
                value = item.get(key)
                if value not in (None, ""):
                    yield image_entry(f"{name}.{key}", root, value)


def image_entry(name: str, root: Path, value: Any) -> Entry:
    """An image a MIS item names by path relative to ``root``, or why it cannot be read."""
    if not isinstance(value, str):
        return Entry(name, None, None, f"not a path: {value!r}")
    path = root / value
    if path.is_dir():
        return Entry(name, None, None, f"a folder, not an image: {value}")
    try:
        return Entry(name, path.read_bytes(), None)
    except FileNotFoundError:
        return Entry(name, None, None, f"image not found: {value}")
    except OSError as error:
        return Entry(name, None, None, f"cannot read {value}: {error.strerror or error}")


def read_folder(folder: Path) -> Iterator[Entry]:
    """Every image file under a plain folder, by its path relative to the folder; an unreadable file is an
    entry with its problem, not an error."""
    for path in sorted(folder.rglob("*")):
        if path.suffix.lower() in IMAGE_SUFFIXES and not path.is_dir():
            name = path.relative_to(folder).as_posix()
            try:
                yield Entry(name, path.read_bytes(), None)
            except OSError as error:  # a broken link, a file without read permission
                yield Entry(name, None, None, f"cannot read: {error.strerror or error}")


def read_hf(name: str) -> Iterator[Entry]:
    """Every config and split of a dataset (local folder or Hub name), images undecoded."""
    for config, split, dataset, columns in hf_tables(name):
        for index, row in enumerate(dataset):
            where = f"{config}/{split}[{index}]"
            if row.get("question"):
                yield Entry(where, None, str(row["question"]))
            for column in columns:
                for slot, data in enumerate(image_bytes(row[column]), 1):
                    if data:
                        yield Entry(f"{where}.{column}{slot}", data, None)


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
    if kind == "mis":
        check_mis_items(against, folder)
    if kind == "folder" and not any(path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()
                                    for path in folder.rglob("*")):
        raise ConfigError(f"{against}: no image files in this benchmark folder")
    return kind


def check_mis_items(against: str, folder: Path) -> None:
    """A MIS layout holds items, and at least one image they name is a file: checked before
    any model work, since an empty benchmark would pass every sample as clean. Images are not
    decoded here; one that cannot be read is skipped (and named) when the check runs."""
    root = mis_root(folder)
    items = [item for file in mis_files(folder) for item in read_array(file)]
    if not items:
        raise ConfigError(f"{against}: the mis_*.json files hold no items (an empty benchmark)")
    if not any(isinstance(item.get(key), str) and item[key] and (root / item[key]).is_file()
               for item in items for key in IMAGE_KEYS):
        raise ConfigError(f"{against}: none of the {len(items)} items names an image file that "
                          f"exists under {root}")


def read_benchmark(against: str, kind: str, cache: FingerprintCache) -> Benchmark:
    """Every question and image of a benchmark; an image that cannot be read is filed under
    ``unreadable`` with the reason. A benchmark with nothing readable is an error (one line):
    reported as "checked, clean" it would certify a build that was never compared."""
    readers = {"mis": lambda: read_mis(Path(against)), "folder": lambda: read_folder(Path(against)),
               "hf": lambda: read_hf(against)}
    benchmark = Benchmark()
    for entry in read_ahead(readers[kind](), cache):
        if entry.problem is not None:
            benchmark.unreadable[entry.name] = entry.problem
        elif entry.data is not None:
            try:
                benchmark.images[entry.name] = cache.of_bytes(entry.data)
            except BadImage as error:
                benchmark.unreadable[entry.name] = str(error)
        if entry.question:
            benchmark.questions[entry.name] = entry.question
    if not benchmark.images and (benchmark.unreadable or not benchmark.questions):
        first = next(iter(benchmark.unreadable.items()), None)
        why = f" ({len(benchmark.unreadable)} unreadable, e.g. {first[0]}: {first[1]})" if first else ""
        raise ConfigError(f"{against}: no readable benchmark images{why}")
    return benchmark


def given(data: bytes) -> Callable[[], bytes]:
    """A reader of bytes already in memory."""
    return lambda: data


def read_ahead(entries: Iterator[Entry], cache: FingerprintCache) -> Iterator[Entry]:
    """The entries as they come, their images hashed ``FILL_CHUNK`` at a time beforehand."""
    while chunk := list(islice(entries, FILL_CHUNK)):
        cache.fill((sha256(entry.data).hexdigest(), given(entry.data))
                   for entry in chunk if entry.problem is None and entry.data is not None)
        yield from chunk


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
        """A pHash cut into this index's chunks, lowest bits first."""
        return [(value >> low) & ((1 << (high - low)) - 1)
                for low, high in zip(self.cuts, self.cuts[1:], strict=False)]

    def candidates(self, fingerprint: Fingerprint) -> set[str]:
        """Benchmark images that share at least one pHash chunk with ``fingerprint``: a superset of those
        within ``distance`` bits, which the caller checks exactly."""
        found: set[str] = set()
        for table, value in zip(self.tables, self.chunks(fingerprint.phash), strict=True):
            found.update(table.get(value, ()))
        return found


def words(text: str) -> frozenset[str]:
    """The lower-cased words and numbers of a question, the unit of the question Jaccard."""
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
    """One comparison's raw results: image and question matches, how many images each side had, and the
    seconds it took."""
    matches: list[dict[str, Any]]
    text_matches: list[dict[str, Any]]
    train_images: int
    benchmark_images: int
    seconds: float


def find_matches(run: RunDir, benchmark: Benchmark, phash_distance: int, dhash_distance: int,
                 text_threshold: float, fingerprints: FingerprintCache) -> Report:
    """Compare every train and validation image with the benchmark's images (exact bytes, or both pHash and
    dHash within their distances) and the samples' questions with its questions."""
    started = time.perf_counter()
    splits = read_splits(run)
    samples = splits.get("train", []) + splits.get("val", [])
    index = HashIndex(benchmark.images, phash_distance)
    store = run.images_dir
    cache: dict[str, Fingerprint] = {}
    matches = []
    fingerprints.fill((ref.sha256, (store / ref.sha256[:2] / f"{ref.sha256}.png").read_bytes)
                      for sample in samples for ref in sample.images)
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
                  text_threshold: float = 0.9, mapper: Mapper | None = None) -> dict[str, Any]:
    """Compare, file the result in ``decontamination.json``, and with ``drop`` reject the matches.

    Returns the result, whose ``newly_dropped`` says which samples this pass rejected. The
    build passes its open ``RunDir``, so its view of the rejects stays current, and its
    ``mapper`` (where images are hashed; threads by default).
    """
    run = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
    run.config()
    kind = check_benchmark(against, kind)
    key = benchmark_key(against)
    started = time.perf_counter()
    fingerprints = FingerprintCache(run, mapper)
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
        "unreadable": [{"item": name, "reason": reason}
                       for name, reason in sorted(benchmark.unreadable.items())],
        "matches": matches, "text_matches": text_matches,
        "dropped": sorted(earlier | set(newly_dropped)),
    }
    reports[key] = result
    write_text_atomic(run.path / REPORT, dump_json({"benchmarks": dict(sorted(reports.items()))}))
    if newly_dropped:
        rejects = []
        for sample_id in newly_dropped:
            where = next(m for m in report.matches + report.text_matches if m["id"] == sample_id)
            rejects.append(RejectRecord(stage=STAGE, id=sample_id, reason=RejectReason.contaminated,
                                        detail=f"matches {where['benchmark']} in {result['name']}"))
        with run:
            record_decided_rejects(run, STAGE, rejects, same=lambda reject: reject.id)
    return {**result, "newly_dropped": newly_dropped}


def decontaminate_build(run: RunDir, settings: DecontaminateConfig,
                        warnings: list[str] | None = None, mapper: Mapper | None = None) -> int:
    """The build step (``decontaminate:`` in the config): every benchmark in turn; how many
    samples were newly dropped, so the build knows whether to split and export again. Lines
    about unreadable benchmark items are added to ``warnings`` (once each over several passes)."""
    dropped = 0
    for bench in settings.against:
        result = decontaminate(
            run, bench.path, bench.kind, drop=settings.drop, drop_text=settings.drop_text,
            phash_distance=settings.phash_distance, dhash_distance=settings.dhash_distance,
            text_threshold=settings.text_jaccard, mapper=mapper)
        dropped += len(result["newly_dropped"])
        if warnings is not None:
            warnings.extend(line for line in unreadable_lines(result) if line not in warnings)
    return dropped


def unreadable_lines(result: dict[str, Any], limit: int = 20) -> list[str]:
    """One line per benchmark item that could not be read (at most ``limit``, then a count)."""
    skipped = result.get("unreadable", [])
    lines = [f"{result['name']}: skipped unreadable benchmark item {entry['item']}: "
             f"{entry['reason']}" for entry in skipped[:limit]]
    if len(skipped) > limit:
        lines.append(f"{result['name']}: ... and {len(skipped) - limit} more unreadable item(s), "
                     f"listed in {REPORT}")
    return lines


def summary(run: RunDir) -> dict[str, dict[str, Any]]:
    """Per benchmark: matches and drops, for the manifest and the dataset card. A benchmark is
    named by its folder's name (no local path in a published card), or ``parent/name`` when two
    share a name (the released ``mis_test`` and a build's own ``export/mis/mis_test``)."""
    results = read_reports(run).values()
    names = Counter(result["name"] for result in results)
    return {(result["name"] if names[result["name"]] == 1 else
             f"{Path(result['against']).parent.name}/{result['name']}"):
            {"as": result["as"], "image_matches": len(result["matches"]),
             "text_matches": len(result["text_matches"]), "dropped": len(result["dropped"]),
             "unreadable": len(result.get("unreadable", []))}
            for result in results}
