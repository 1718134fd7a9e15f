"""Decontamination finds train images copied into a benchmark, nothing else, and drops them:
as a command on a finished run and as the build step ``decontaminate:`` (issue #16 part 4)."""

from __future__ import annotations

import io
import json
import random
import shutil
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest
import yaml
from PIL import Image

from mis_data.core.rundir import RunDir
from mis_data.pipeline.decontaminate import Fingerprint, HashIndex, decontaminate
from tests.support.api import KEY, api_config
from tests.support.builds import copy_run, read_jsonl, shared_run, tree_hashes
from tests.support.cli import run_cli, write_config
from tests.support.eval_layout import write_layout
from tests.support.loopback import LoopbackServer
from tests.support.paths import CONFIGS


def photo(seed: str) -> Image.Image:
    """A distinct, photo-like image per object: smooth colour fields from a seeded noise map."""
    rng = random.Random(seed)
    small = Image.frombytes("RGB", (8, 8), rng.randbytes(8 * 8 * 3))
    return small.resize((160, 160), Image.BICUBIC)


@pytest.fixture(scope="module")
def photo_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("decontaminate")
    folder = root / "photos"
    folder.mkdir()
    for file in sorted((CONFIGS / "concepts").glob("*.yaml")):
        for line in file.read_text().splitlines():
            for key in ("object1", "object2"):
                if f"{key}:" in line:
                    name = line.split(f"{key}:")[1].split(",")[0].strip().strip('"')
                    slug = "_".join(name.lower().replace("'", "").split())
                    photo(name).save(folder / f"{slug}.png")
    config = write_config(root, images={"source": "folder", "folder": str(folder)},
                          concepts={"sources": [{"kind": "shipped", "path": str(CONFIGS / "concepts")}],
                                    "max_per_sub_category": 2})
    result = run_cli("build", "--config", config, "--run-dir", root / "run", "--no-progress")
    assert result.exit_code == 0, result.output
    return root / "run"


def benchmark_with_copies(run: Path, target: Path) -> set[str]:
    """The run's own MIS test export plus three items made of train images (one exact copy,
    two re-encoded as resized JPEGs); returns the train sample ids those images belong to."""
    shutil.copytree(run / "export/mis/mis_test", target)
    train = read_jsonl(run / "splits/train.jsonl")
    chosen = [train[0], train[len(train) // 2], train[-1]]
    items = json.loads((target / "mis_easy.json").read_text())
    copied: set[str] = set()
    first = len(items) + 1
    for number, sample in enumerate(chosen, start=first):
        sha = sample["image1"]["sha256"]
        source = run / "images" / sha[:2] / f"{sha}.png"
        folder = target / "easy_image" / str(number)
        folder.mkdir(parents=True)
        if number == first:
            shutil.copyfile(source, folder / "object1.png")
        else:
            with Image.open(source) as image:
                buffer = io.BytesIO()
                image.convert("RGB").resize((140, 140)).save(buffer, format="JPEG", quality=80)
            (folder / "object1.png").write_bytes(buffer.getvalue())
        shutil.copyfile(run / "export/mis/mis_test" / items[0]["image_path2"], folder / "object2.png")
        items.append({**items[0], "id": number, "image_path1": f"easy_image/{number}/object1.png",
                      "image_path2": f"easy_image/{number}/object2.png"})
        copied |= {s["id"] for s in train if s["image1"]["sha256"] == sha
                   or s["image2"]["sha256"] == sha}
    (target / "mis_easy.json").write_text(json.dumps(items))
    return copied


def test_finds_every_copied_train_image_and_nothing_else_then_drops(photo_run: Path,
                                                                     tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(photo_run, run)
    copied = benchmark_with_copies(run, tmp_path / "bench")
    result = run_cli("decontaminate", run, "--against", tmp_path / "bench")
    assert result.exit_code == 0, result.output
    report = only_report(run)
    assert report["as"] == "mis" and report["images_per_second"] > 0
    assert {m["id"] for m in report["matches"]} == copied
    assert any(m["exact"] for m in report["matches"]) and any(not m["exact"] for m in report["matches"])
    dropped = run_cli("decontaminate", run, "--against", tmp_path / "bench", "--drop")
    assert dropped.exit_code == 0, dropped.output
    rejects = {r.id: r.reason.value for r in RunDir(run).rejects() if r.stage == "decontamination"}
    assert rejects == dict.fromkeys(copied, "contaminated")
    assert {m["id"] for m in only_report(run)["matches"]} == copied  # still listed after the drop
    assert report["images_hashed"] > 0 and only_report(run)["images_hashed"] == 0  # kept
    remaining = {s["id"] for s in read_jsonl(run / "splits/train.jsonl")}
    assert remaining and not remaining & copied
    exported = (run / "export/internvl/mis_train.jsonl").read_text()
    assert not any(sample_id in exported for sample_id in copied)
    again = run_cli("split", run)  # a re-split keeps them out
    assert again.exit_code == 0 and not {s["id"] for s in read_jsonl(
        run / "splits/train.jsonl")} & copied


class CountingMapper:
    """A ``core.pool.Mapper`` that counts what it was given (in this thread, in order)."""

    def __init__(self) -> None:
        self.items = 0

    def map(self, fn: Any, items: Any) -> list[Any]:
        self.items += len(items)
        return [fn(item) for item in items]


def test_images_are_hashed_where_the_build_says(photo_run: Path, tmp_path: Path) -> None:
    """Hashing is the slow part (decoding): a build hands it to its mapper (threads, or Ray
    tasks with ``executor: ray``), and the matches are the same."""
    run = tmp_path / "run"
    shutil.copytree(photo_run, run)
    copied = benchmark_with_copies(run, tmp_path / "bench")
    mapper = CountingMapper()
    result = decontaminate(run, str(tmp_path / "bench"), mapper=mapper)
    assert mapper.items == result["images_hashed"] > 0
    assert {m["id"] for m in result["matches"]} == copied


def only_report(run: Path) -> dict:
    reports = json.loads((run / "decontamination.json").read_text())["benchmarks"]
    assert len(reports) == 1
    return next(iter(reports.values()))


def test_the_hash_index_finds_every_hash_within_the_distance() -> None:
    rng = random.Random(7)
    bench = {f"b{i}": Fingerprint(str(i), rng.getrandbits(64), 0) for i in range(2000)}
    index = HashIndex(bench, distance=4)
    for name, fingerprint in list(bench.items())[:200]:
        flipped = fingerprint.phash
        for bit in rng.sample(range(64), 4):
            flipped ^= 1 << bit
        assert name in index.candidates(Fingerprint("x", flipped, 0))
    far = Fingerprint("y", bench["b0"].phash ^ 0xFFFF_FFFF_FFFF_FFFF, 0)
    assert "b0" not in index.candidates(far)


def copy_train_images(run: Path, folder: Path, count: int) -> set[str]:
    """``count`` train images copied into an image folder; the train ids that use them."""
    folder.mkdir(parents=True)
    train = read_jsonl(run / "splits/train.jsonl")
    shas = sorted({s["image1"]["sha256"] for s in train})[:count]
    for sha in shas:
        shutil.copyfile(run / "images" / sha[:2] / f"{sha}.png", folder / f"{sha[:12]}.png")
    return {s["id"] for s in train if {s["image1"]["sha256"], s["image2"]["sha256"]} & set(shas)}


def test_the_build_step_over_http_drops_the_copies_with_no_model_call(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``decontaminate:`` in the config of a real-backend build: added to a finished run, the
    same command drops exactly the train samples whose images were copied into the benchmark,
    asks the model nothing, and a third run changes no byte."""
    monkeypatch.setenv("MIS_LOOPBACK_KEY", KEY)
    with LoopbackServer() as server:
        config = api_config(tmp_path, server.url)
        args = ("build", "--config", config, "--run-dir", tmp_path / "run", "--no-progress")
        assert run_cli(*args).exit_code == 0
        run = tmp_path / "run"
        copied = copy_train_images(run, tmp_path / "bench", 2)
        assert copied and len(read_jsonl(run / "splits/train.jsonl")) > len(copied)
        data = yaml.safe_load(config.read_text())
        data["decontaminate"] = {"against": [str(tmp_path / "bench")]}
        config.write_text(yaml.safe_dump(data))
        sent = len(server.state.received)
        result = run_cli(*args)
        assert result.exit_code == 0, result.output
        assert len(server.state.received) == sent  # decontamination asks no model
        first = tree_hashes(run / "export")
        again = run_cli(*args)
        assert again.exit_code == 0 and len(server.state.received) == sent
    assert tree_hashes(run / "export") == first
    rejects = {r.id for r in RunDir(run).rejects() if r.reason.value == "contaminated"}
    assert rejects == copied
    assert not {s["id"] for s in read_jsonl(run / "splits/train.jsonl")} & copied
    report = only_report(run)
    assert report["as"] == "folder" and set(report["dropped"]) == copied
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["decontamination"] == {"bench": {"as": "folder", "image_matches": len(
        report["matches"]), "text_matches": 0, "dropped": len(copied), "unreadable": 0}}


@pytest.mark.parametrize(("against", "message"), [
    ("no/such/folder", "no/such/folder: benchmark folder not found (a Hub dataset needs --as hf"),
    ({"path": "{tmp}", "kind": "mis"}, "no mis_*.json here or in mis_test/"),
    ({"path": "{tmp}", "kind": "parquet"}, "decontaminate.against.0.kind: Input should be"),
])
def test_a_broken_benchmark_stops_the_build_before_any_file(tmp_path: Path, against: object,
                                                            message: str) -> None:
    if isinstance(against, dict):
        against = {key: value.format(tmp=tmp_path) for key, value in against.items()}
    config = write_config(tmp_path / "cfg", decontaminate={"against": [against]})
    result = run_cli("build", "--config", config, "--run-dir", tmp_path / "run", "--no-progress")
    assert result.exit_code == 2 and message in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_each_benchmark_keeps_its_own_entry_even_with_the_same_folder_name(
        photo_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(photo_run, run)
    train = read_jsonl(run / "splits/train.jsonl")
    for parent, sample in (("released", train[0]), ("ours", train[-1])):
        folder = tmp_path / parent / "mis_test"
        folder.mkdir(parents=True)
        sha = sample["image2"]["sha256"]
        shutil.copyfile(run / "images" / sha[:2] / f"{sha}.png", folder / "copy.png")
        assert run_cli("decontaminate", run, "--against", folder, "--drop").exit_code == 0
    reports = json.loads((run / "decontamination.json").read_text())["benchmarks"]
    assert len(reports) == 2 and all(report["dropped"] for report in reports.values())
    manifest = json.loads((run / "manifest.json").read_text())
    assert set(manifest["decontamination"]) == {"released/mis_test", "ours/mis_test"}
    assert str(tmp_path) not in (run / "manifest.json").read_text()  # no local path published


def test_an_unreachable_hub_benchmark_is_one_line_and_loses_nothing(tmp_path: Path) -> None:
    """A Hub name (kind: hf) cannot be checked before the build; when it cannot be loaded the
    build ends with one line after everything else is done, and without it finishes as usual."""
    config = write_config(tmp_path, decontaminate={"against": [{"path": "nobody/nothing",
                                                                "kind": "hf"}]})
    args = ("build", "--config", config, "--run-dir", tmp_path / "run", "--no-progress")
    result = run_cli(*args)
    assert result.exit_code == 2
    assert "nobody/nothing: cannot load as a dataset" in result.output
    assert (tmp_path / "run/splits/train.jsonl").read_text()  # the build itself completed
    data = yaml.safe_load(config.read_text())
    del data["decontaminate"]
    config.write_text(yaml.safe_dump(data))
    again = run_cli(*args)
    assert again.exit_code == 0, again.output


# -- unreadable and empty benchmarks (issue #27 case 6) -----------------------------------------

def bomb_png() -> bytes:
    """A PNG whose header claims 30000 x 30000 pixels (a few bytes on disk): Pillow refuses
    it as a decompression bomb when it is opened."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    header = struct.pack(">IIBBBBB", 30000, 30000, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + chunk(b"IEND", b""))


def spoil(bench: Path, how: str) -> str:
    """Make the first easy item's first image unreadable; returns the reason expected."""
    items = json.loads((bench / "mis_easy.json").read_text())
    if how == "missing":
        (bench / items[0]["image_path1"]).unlink()
        expected = "image not found"
    elif how == "folder":
        items[0]["image_path1"] = str(Path(items[0]["image_path1"]).parent)
        expected = "a folder, not an image"
    elif how == "integer":
        items[0]["image_path1"] = 5
        expected = "not a path: 5"
    else:
        (bench / items[0]["image_path1"]).write_bytes(bomb_png())
        expected = "decompression bomb"
    (bench / "mis_easy.json").write_text(json.dumps(items))
    return expected


@pytest.mark.parametrize("how", ["missing", "folder", "integer", "bomb"])
def test_an_unreadable_benchmark_image_is_skipped_counted_and_named(
        how: str, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    run = copy_run(shared_run(tmp_path_factory), tmp_path / "run")
    bench = tmp_path / "bench" / "mis_test"
    shutil.copytree(run / "export/mis/mis_test", bench)
    expected = spoil(bench, how)
    result = run_cli("decontaminate", run, "--against", bench)
    assert result.exit_code == 0, result.output
    warning = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and "mis_easy[0].image_path1" in warning[0] and expected in warning[0]
    assert "1 unreadable benchmark item(s) skipped" in result.output
    report = only_report(run)
    assert [entry["item"] for entry in report["unreadable"]] == ["mis_easy[0].image_path1"]
    assert report["benchmark_images"] > 0
    assert run_cli("split", run).exit_code == 0  # the manifest and the card carry the count
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["decontamination"]["mis_test"]["unreadable"] == 1
    assert "| unreadable |" in (run / "export/hf/README.md").read_text()


def test_the_build_step_skips_an_unreadable_benchmark_image_after_the_work(tmp_path: Path) -> None:
    bench = write_layout(tmp_path / "bench", {"easy": [
        {"tag": "b1", "category": "Illegal Activity", "sub_category": "Property Crimes"},
        {"tag": "b2", "category": "Illegal Activity", "sub_category": "Property Crimes"}]},
        missing=("b2",))
    config = write_config(tmp_path, decontaminate={"against": [{"path": str(bench), "kind": "mis"}]})
    result = run_cli("build", "--config", config, "--run-dir", tmp_path / "run", "--no-progress")
    assert result.exit_code == 0, result.output
    assert "warning: mis_test: skipped unreadable benchmark item mis_easy[1].image_path2: image " \
           "not found: easy_image/2/object2.jpg" in result.stderr
    manifest = json.loads((tmp_path / "run/manifest.json").read_text())
    assert manifest["decontamination"]["mis_test"]["unreadable"] == 1


def empty_mis(tmp: Path) -> dict[str, str]:
    (tmp / "bench").mkdir()
    (tmp / "bench/mis_easy.json").write_text("[]")
    return {"path": str(tmp / "bench"), "kind": "mis"}


def imageless_mis(tmp: Path) -> dict[str, str]:
    root = write_layout(tmp / "bench", {"easy": [
        {"tag": "b1", "category": "Illegal Activity", "sub_category": "Property Crimes"}]})
    shutil.rmtree(root / "easy_image")
    return {"path": str(root), "kind": "mis"}


def empty_folder(tmp: Path) -> dict[str, str]:
    (tmp / "bench").mkdir()
    (tmp / "bench/notes.txt").write_text("no images here")
    return {"path": str(tmp / "bench"), "kind": "folder"}


EMPTY_BENCHMARKS = {
    "no items": (empty_mis, "the mis_*.json files hold no items"),
    "no image file": (imageless_mis, "none of the 1 items names an image file that exists"),
    "no image in the folder": (empty_folder, "no image files in this benchmark folder"),
}


@pytest.mark.parametrize("case", sorted(EMPTY_BENCHMARKS))
def test_an_empty_benchmark_is_a_config_error_before_any_model_work(case: str,
                                                                    tmp_path: Path) -> None:
    make, message = EMPTY_BENCHMARKS[case]
    config = write_config(tmp_path / "cfg", decontaminate={"against": [make(tmp_path)]})
    for command in (("build", "--config", config, "--run-dir", tmp_path / "run", "--no-progress"),
                    ("plan", "--config", config)):
        result = run_cli(*command)
        assert result.exit_code == 2 and message in result.output, result.output
        assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_a_benchmark_with_no_readable_image_is_an_error_not_clean(
        tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    run = copy_run(shared_run(tmp_path_factory), tmp_path / "run")
    bench = tmp_path / "bench"
    bench.mkdir()
    (bench / "broken.png").write_bytes(b"not a png at all")
    (bench / "bomb.png").write_bytes(bomb_png())
    result = run_cli("decontaminate", run, "--against", bench)
    assert result.exit_code == 2
    assert f"{bench}: no readable benchmark images (2 unreadable, e.g. bomb.png: decompression " \
           "bomb" in result.output
    assert not (run / "decontamination.json").exists()
