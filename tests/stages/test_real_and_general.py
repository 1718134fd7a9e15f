"""MIS-real photo swap and the general-data mix, through a full offline build."""

from __future__ import annotations

import io
import json
from pathlib import Path

from PIL import Image

from mis_data.core.ids import parent_id
from mis_data.core.records import ConceptRecord, GeneralRecord, JudgementRecord, PairRecord
from mis_data.core.rundir import RunDir
from tests.support.cli import run_cli, write_config


def photo(path: Path, color: tuple[int, int, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    Image.new("RGB", (48, 40), color).save(buffer, format="JPEG")
    path.write_bytes(buffer.getvalue())


def finished_run(tmp_path: Path, **overrides: object) -> RunDir:
    config = write_config(tmp_path, **overrides)
    result = run_cli("build", "--config", config, "--run-dir", tmp_path / "run", "--no-progress")
    assert result.exit_code == 0, result.output
    return RunDir(tmp_path / "run")


def test_real_split_swaps_in_pool_photos(tmp_path: Path) -> None:
    probe = finished_run(tmp_path / "probe")
    concepts = probe.read_by_id("concepts", ConceptRecord)
    tests = [j for j in probe.read("judgements", JudgementRecord) if j.route in ("easy", "hard")]
    pool = tmp_path / "pool"
    for index, judgement in enumerate(tests[:3]):
        concept = concepts[parent_id(judgement.id)]
        photo(pool / (concept.object1.replace(" ", "_") + ".jpg"), (index * 40, 10, 10))
        photo(pool / (concept.object2.replace(" ", "_") + ".jpg"), (10, index * 40, 10))
    run = finished_run(tmp_path / "real", real={"folder": str(pool), "count": 2})
    real = run.read("real", PairRecord)
    assert len(real) == 2
    assert all(pair.variant == "real" and pair.image1.source.startswith("real:") for pair in real)
    # A pair's questions share its objects, so any of them may be the one with pool photos.
    chosen = {parent_id(pair.id.removesuffix(".real")) for pair in real}
    assert chosen <= {parent_id(t.id) for t in tests[:3]}
    items = json.loads((run.path / "export/mis/mis_test/mis_real.json").read_text())
    assert len(items) == 2
    for item in items:
        assert list(item) == ["id", "category", "sub_category", "question", "image_path1",
                              "image_path2"]
        with Image.open(run.path / "export/mis/mis_test" / item["image_path1"]) as image:
            assert image.size == (48, 40)


def test_general_mix_becomes_train_samples(tmp_path: Path) -> None:
    data = tmp_path / "general"
    for name, color in (("a.png", (1, 2, 3)), ("b.png", (4, 5, 6)), ("c.png", (7, 8, 9))):
        photo(data / "imgs" / name, color)
    rows = [
        {"images": ["imgs/a.png", "imgs/b.png"], "question": "<image><image>Compare the two photos.",
         "answer": "The first is darker than the second."},
        {"image": ["imgs/b.png", "imgs/c.png"], "conversations": [
            {"from": "human", "value": "What differs?"}, {"from": "gpt", "value": "The colour."}]},
        {"images": ["imgs/a.png"], "question": "One image only", "answer": "x"},
        {"images": ["../outside.png", "imgs/a.png"], "question": "q", "answer": "a"},
        {"images": ["imgs/a.png", "imgs/missing.png"], "question": "q", "answer": "a"},
    ]
    (data / "general.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows) + "{bad\n")
    run = finished_run(tmp_path, general={"path": str(data / "general.jsonl"), "count": 10})
    general = run.read("general", GeneralRecord)
    assert len(general) == 2
    assert all("<image>" not in record.question for record in general)
    reasons = sorted(r.reason.value for r in run.rejects() if r.stage == "general")
    assert reasons == ["bad_source", "bad_source", "bad_source", "missing_image"]
    train = [json.loads(line) for line in
             (run.path / "export/internvl/mis_train.jsonl").read_text().splitlines()]
    general_rows = [row for row in train if row.get("source") == "general"]
    assert len(general_rows) == 2
