"""How fast the review gallery opens at MIS scale, and what it weighs.

Writes a synthetic finished run of ``--samples`` questions (3 per pair, 14 sub-categories,
MIS-like split mix, labels of MIS length, a few ties), writes its gallery, then opens it in
headless Chromium (the system one, through Playwright) ``--repeat`` times and reports:

* first screen: from navigation start until the first page of cards is in the DOM
  (``data-ready``), and until their thumbnails have loaded;
* page weight: what the first screen loads (shell, script, style, the row index, one details
  chunk, the first page's thumbnails) and the whole gallery folder.

    python scripts/bench_gallery.py                  # 10,000 samples
    python scripts/bench_gallery.py --samples 2000 --keep /tmp/gallery-run

Nothing here asserts a time: machines are shared and noisy; the figure is for the README.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from mis_data.core.config import FORMAT_VERSION, RunConfig, load_config  # noqa: E402
from mis_data.core.records import (  # noqa: E402
    ConceptRecord,
    ImageRef,
    InstructionRecord,
    JudgementRecord,
    LabelRecord,
    PairRecord,
    RejectReason,
    RejectRecord,
    Vote,
)
from mis_data.core.rundir import RunDir  # noqa: E402
from mis_data.core.taxonomy import load_taxonomy  # noqa: E402
from mis_data.images.store import ImageStore  # noqa: E402
from mis_data.images.typography import render_typography  # noqa: E402
from mis_data.pipeline.finish import finish_run  # noqa: E402
from mis_data.reports.review import write_review  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
LABEL = ("The first image shows {a} and the second image shows {b}. Put together as the request "
         "describes, they point to a plan that could hurt people or damage what belongs to "
         "others, so I will not help with that part. ") * 5


def synthetic_run(folder: Path, samples: int, images: int = 1200) -> Path:
    """A finished run written record by record (no model, no stage): what the gallery reads."""
    config = load_config(REPO / "configs" / "demo.yaml", {"name": "bench-gallery"})
    taxonomy = load_taxonomy(config.taxonomy)
    subs = taxonomy.sub_categories
    rng = random.Random(0)
    run = RunDir(folder)
    run.write_config(RunConfig(format_version=FORMAT_VERSION, config_sha256="bench",
                               prompt_sha256={}, config=config))
    store = ImageStore(run.images_dir)
    refs = []
    for index in range(images):
        stored = store.put(render_typography(f"object {index}", f"bench{index}", 256))
        refs.append(ImageRef(sha256=stored.sha256, width=stored.width, height=stored.height,
                             source="typography"))
    concepts, pairs, questions, judgements, labels, queue = [], [], [], [], [], []
    pair_count = (samples + 2) // 3
    for number in range(pair_count):
        sub = subs[number % len(subs)]
        pair_id = f"{number:016x}"
        a, b = f"object {number}a", f"place {number}b"
        concepts.append(ConceptRecord(id=pair_id, category=sub.category, sub_category=sub.name,
                                      object1=a, object2=b, source="bench"))
        pairs.append(PairRecord(id=pair_id, image1=refs[(2 * number) % images],
                                image2=refs[(2 * number + 1) % images]))
        route = rng.choices(["train", "easy", "hard"], weights=[3927, 1675, 510])[0]
        for k in range(1, 4):
            sample = f"{pair_id}-{k}"
            if len(questions) >= samples:
                break
            questions.append(InstructionRecord(
                id=sample, concept_id=pair_id, index=k, model="bench",
                harmful=f"How to misuse the {a} at the {b} (variant {k})?",
                replaced=f"How to use the object in the first image at the place in the second image ({k})?",
                question=f"What is the best way to use the object in the first image at the place "
                         f"depicted in the second image, case {number}-{k}?"))
            vote = Vote(judge="bench", text_unsafe=route == "train", image1_harmful=route == "easy",
                        image2_harmful=False, combination_harmful=True, meaningful=True,
                        sub_category=sub.name, route=route, reason="bench vote " * 4)
            if number % 97 == 0 and k == 1:
                queue.append({"id": sample, "question": questions[-1].question,
                              "votes": [vote.model_dump(), vote.model_copy(update={"route": "hard"})
                                        .model_dump()]})
                continue
            judgements.append(JudgementRecord(id=sample, route=route, sub_category=sub.name,
                                              category=sub.category, votes=[vote]))
            if route == "train":
                labels.append(LabelRecord(id=sample, text=LABEL.format(a=a, b=b), model="bench",
                                          prompt_sha256="0" * 64))
    for stage, records in (("concepts", concepts), ("pairs", pairs), ("instructions", questions),
                           ("judgements", judgements), ("labels", labels)):
        run.append(stage, records)
    for item in queue:
        run.reject(RejectRecord(stage="judgements", id=item["id"], reason=RejectReason.judge_tie,
                                detail="judges split evenly"))
    (folder / "review_queue.jsonl").write_text("".join(json.dumps(i) + "\n" for i in queue))
    run.close()
    finish_run(run, config, store, formats=["mis"], taxonomy=taxonomy)
    return folder


def first_screen_bytes(page: Path) -> dict[str, int]:
    folder = page.parent
    sizes = {name: (folder / name).stat().st_size
             for name in ("index.html", "gallery.js", "gallery.css", "data/index.js",
                          "data/details-000.js")}
    index = (folder / "data" / "index.js").read_text(encoding="utf-8")
    data = json.loads(index[index.index("(") + 1:index.rindex(")")])
    thumbs = {data["images"][row[key]][0] for row in data["rows"][:48] for key in ("a", "b")}
    sizes["first page thumbnails"] = sum((folder / t).stat().st_size for t in thumbs if t)
    return sizes


def folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def open_times(page: Path, repeat: int) -> list[tuple[float, float, float]]:
    """(ms to cards in the DOM, ms to their thumbnails loaded, in-page ms at ready) per run."""
    from playwright.sync_api import sync_playwright

    times = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        for _ in range(repeat):
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            tab = context.new_page()
            start = time.perf_counter()
            tab.goto(page.as_uri())
            tab.wait_for_selector("body[data-ready='1']")
            ready = time.perf_counter()
            tab.wait_for_function("Array.from(document.querySelectorAll('.card img'))"
                                  ".slice(0, 12).every(i => i.complete && i.naturalWidth > 0)")
            painted = time.perf_counter()
            in_page = tab.evaluate("performance.now()")
            times.append(((ready - start) * 1000, (painted - start) * 1000, in_page))
            context.close()
        browser.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--keep", type=Path, help="write the run here and keep it")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as temp:
        folder = options.keep or Path(temp) / "run"
        start = time.perf_counter()
        synthetic_run(folder, options.samples)
        built = time.perf_counter() - start
        start = time.perf_counter()
        page = write_review(folder)
        written = time.perf_counter() - start
        start = time.perf_counter()
        write_review(folder)
        rewritten = time.perf_counter() - start
        times = open_times(page, options.repeat)
        weights = first_screen_bytes(page)
        print(f"synthetic run: {options.samples:,} samples in {built:.1f} s")
        print(f"write_review: {written:.1f} s (thumbnails made), {rewritten:.1f} s (again)")
        ready = [t[0] for t in times]
        painted = [t[1] for t in times]
        print(f"first screen, cards in the DOM: median {statistics.median(ready):.0f} ms "
              f"(min {min(ready):.0f}, max {max(ready):.0f}) over {len(times)} opens")
        print(f"first screen, thumbnails loaded: median {statistics.median(painted):.0f} ms")
        print("first-screen weight:")
        for name, size in weights.items():
            print(f"  {name:<24}{size / 1024:>10,.1f} KiB")
        print(f"  {'total':<24}{sum(weights.values()) / 1024:>10,.1f} KiB")
        print(f"whole gallery folder: {folder_bytes(page.parent) / 1024 / 1024:,.1f} MiB "
              f"({len(list((page.parent / 'data').glob('details-*.js')))} details chunks)")


if __name__ == "__main__":
    main()
