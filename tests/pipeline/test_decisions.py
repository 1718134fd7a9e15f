"""Reviewers' decisions fed back into a run (`mis-data apply-decisions`, and `build` picking up
`RUN/decisions.jsonl`): drops become rejects, ties take their route, moves change the
sub-category, splits and exports follow, and applying twice changes nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mis_data.core.records import JudgementRecord, RejectReason, ReviewDecision
from mis_data.core.rundir import RunDir
from tests.support.builds import build, copy_run, read_jsonl, run_cli, shared_run, tree_hashes, write_config
from tests.support.decisions import exported_ids, make_tie, split_members

AT = "2026-01-05T10:{:02d}:00Z"


def decision(sample: str, action: str, minute: int = 0, **fields: Any) -> dict[str, Any]:
    return {"id": sample, "action": action, "reviewer": "Ada", "at": AT.format(minute), **fields}


def write_decisions(path: Path, decisions: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(d) + "\n" for d in decisions), encoding="utf-8")
    return path








@pytest.fixture()
def tied(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A private copy of the shared run (one question per pair), re-split after one of its
    easy samples became a tie: a consistent finished run with one open review-queue item."""
    path = copy_run(shared_run(tmp_path_factory), tmp_path / "run")
    tie = sorted(row["id"] for row in read_jsonl(path / "splits" / "easy.jsonl"))[0]
    make_tie(path, tie)
    result = run_cli("split", path)
    assert result.exit_code == 0, result.output
    assert tie not in split_members(path)
    return path, tie


def test_drops_ties_and_exports_follow_decisions_and_apply_twice_is_a_no_op(
        tied: tuple[Path, str]) -> None:
    run, tie = tied
    members = split_members(run)
    dropped = sorted(sample for sample in members if "." not in sample)[:3]
    reasons = ["unreasonable", "meaningless", "duplicate"]
    path = write_decisions(run.parent / "decisions.jsonl", [
        *(decision(sample, "drop", i, reason=reason, note="looks wrong")
          for i, (sample, reason) in enumerate(zip(dropped, reasons, strict=True))),
        decision(tie, "resolve", 5, route="hard")])

    result = run_cli("apply-decisions", run, path)
    assert result.exit_code == 0, result.output
    assert "3 dropped, 0 moved, 1 resolved" in result.output

    current = RunDir(run).rejects()
    review = {r.id: r for r in current if r.stage == "review"}
    assert sorted(review) == dropped
    assert {r.reason for r in review.values()} == {RejectReason.dropped_by_reviewer}
    assert [review[s].detail.split(" by ")[0] for s in dropped] == [
        f"dropped ({reason})" for reason in reasons]
    assert all("Ada at 2026-01-05T10:0" in r.detail and "looks wrong" in r.detail
               for r in review.values())
    assert not any(r.id == tie and r.reason == RejectReason.judge_tie for r in current)

    judged = RunDir(run).read_by_id("judgements", JudgementRecord)[tie]
    assert judged.route == "hard" and judged.decision is not None
    assert judged.decision.reviewer == "Ada" and judged.decision.route == "hard"
    assert [v.judge for v in judged.votes] == ["judge-a", "judge-b"]

    after = split_members(run)
    assert not set(dropped) & set(after) and after[tie] == "hard"
    assert not set(dropped) & exported_ids(run) and tie in exported_ids(run)
    manifest = json.loads((run / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["review"]["dropped"] == 3 and manifest["review"]["resolve"] == 1
    assert manifest["splits"]["hard"]["total"] == sum(1 for s in after.values() if s == "hard")

    before = tree_hashes(run)
    again = run_cli("apply-decisions", run, path)
    assert again.exit_code == 0, again.output
    assert "0 new decision(s)" in again.output and "(nothing changed)" in again.output
    assert tree_hashes(run) == before


def test_same_decisions_give_the_same_bytes(tied: tuple[Path, str], tmp_path: Path) -> None:
    run, tie = tied
    twin = copy_run(run, tmp_path / "twin")
    sample = sorted(split_members(run))[1]
    path = write_decisions(tmp_path / "d.jsonl", [
        decision(sample, "move", 1, sub_category="Identity Theft"),
        decision(tie, "resolve", 2, route="easy", sub_category="Cybercrimes")])
    for folder in (run, twin):
        assert run_cli("apply-decisions", folder, path).exit_code == 0
    assert tree_hashes(run) == tree_hashes(twin)
    judgements = RunDir(run).read_by_id("judgements", JudgementRecord)
    assert judgements[sample].sub_category == "Identity Theft"
    assert judgements[sample].category == "Privacy" and judgements[sample].moved_from
    assert judgements[tie].sub_category == "Cybercrime"  # an alias is stored by its canonical name
    rows = {row["id"]: row for split in ("train", "val", "easy", "hard")
            for row in read_jsonl(run / "splits" / f"{split}.jsonl")}
    assert rows[sample]["sub_category"] == "Identity Theft"


def test_latest_decision_wins_and_a_drop_can_be_undone(tied: tuple[Path, str]) -> None:
    run, _ = tied
    sample = sorted(s for s in split_members(run) if "." not in s)[0]
    log = run / "decisions.jsonl"
    write_decisions(log, [decision(sample, "drop", 1, reason="duplicate")])
    assert run_cli("apply-decisions", run).exit_code == 0
    assert sample not in split_members(run)
    # Appended later, but made earlier: it does not win.
    with open(log, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(decision(sample, "keep", 0)) + "\n")
    assert run_cli("apply-decisions", run).exit_code == 0
    assert sample not in split_members(run)
    with open(log, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(decision(sample, "keep", 2)) + "\n")
    result = run_cli("apply-decisions", run)
    assert result.exit_code == 0, result.output
    assert sample in split_members(run)
    assert not [r for r in RunDir(run).rejects() if r.stage == "review"]
    judged = RunDir(run).read_by_id("judgements", JudgementRecord)[sample]
    assert judged.decision is not None and judged.decision.action == "keep"


def test_a_pair_decision_covers_its_questions_until_one_is_decided_again(
        demo_run: Path, tmp_path: Path) -> None:
    run = copy_run(demo_run, tmp_path / "run")
    questions = read_jsonl(run / "instructions.jsonl")
    pair = questions[0]["concept_id"]
    siblings = sorted(q["id"] for q in questions if q["concept_id"] == pair)
    assert len(siblings) == 3
    write_decisions(run / "decisions.jsonl", [
        decision(pair, "drop", 1, scope="pair", reason="meaningless"),
        decision(siblings[1], "keep", 2)])
    result = run_cli("apply-decisions", run)
    assert result.exit_code == 0, result.output
    dropped = {r.id for r in RunDir(run).rejects() if r.stage == "review"}
    assert dropped == {siblings[0], siblings[2]}
    detail = next(r.detail for r in RunDir(run).rejects() if r.id == siblings[0])
    assert "with its whole pair" in detail


def test_bad_lines_and_unknown_ids_are_reported_not_applied(tied: tuple[Path, str],
                                                            tmp_path: Path) -> None:
    run, _ = tied
    sample = sorted(split_members(run))[0]
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join([
        json.dumps(decision(sample, "drop", 1)),  # no reason
        json.dumps(decision("nosuchsample-1", "keep", 1)),
        json.dumps(decision(sample, "move", 2, sub_category="Knitting")),
        "{not json"]) + "\n", encoding="utf-8")
    before = split_members(run)
    result = run_cli("apply-decisions", run, path)
    assert result.exit_code == 0, result.output
    assert "a drop needs a reason" in result.output
    assert "nosuchsample-1" in result.output and "unknown sub-category 'Knitting'" in result.output
    assert split_members(run) == before


def test_decision_model_rejects_incomplete_decisions() -> None:
    with pytest.raises(ValueError, match="a move needs"):
        ReviewDecision.model_validate(decision("a-1", "move"))
    with pytest.raises(ValueError, match="time zone"):
        ReviewDecision.model_validate(decision("a-1", "keep") | {"at": "2026-01-05T10:00:00"})
    with pytest.raises(ValueError, match="reviewer"):
        ReviewDecision.model_validate(decision("a-1", "keep") | {"reviewer": "  "})


def test_build_picks_up_decisions_and_labels_a_tie_resolved_to_train(
        tied: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory) -> None:
    run, tie = tied
    config = shared_run(tmp_path_factory).parent / "config.yaml"
    labels_before = {row["id"] for row in read_jsonl(run / "labels.jsonl")}
    assert tie not in labels_before
    dropped = sorted(s for s in split_members(run) if "." not in s)[0]
    write_decisions(run / "decisions.jsonl", [
        decision(tie, "resolve", 1, route="train"), decision(dropped, "drop", 1, reason="duplicate")])
    result = run_cli("build", "--config", config, "--run-dir", run, "--no-progress")
    assert result.exit_code == 0, result.output
    assert tie in {row["id"] for row in read_jsonl(run / "labels.jsonl")}
    members = split_members(run)
    assert members.get(tie) in ("train", "val") and dropped not in members


# -- the log as people and tools leave it (issue #27 case 4) -------------------------------------

def test_a_last_line_without_its_newline_is_applied(tied: tuple[Path, str], tmp_path: Path) -> None:
    run, _ = tied
    first, second = sorted(s for s in split_members(run) if "." not in s)[:2]
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps(decision(first, "drop", 1, reason="duplicate")) + "\n"
                    + json.dumps(decision(second, "drop", 2, reason="meaningless")), encoding="utf-8")
    result = run_cli("apply-decisions", run, path)
    assert result.exit_code == 0, result.output
    assert "2 new decision(s)" in result.output and "2 dropped" in result.output
    assert not {first, second} & set(split_members(run))


def test_the_runs_log_keeps_a_valid_last_line_at_the_next_append(tied: tuple[Path, str],
                                                                 tmp_path: Path) -> None:
    run, _ = tied
    first, second = sorted(s for s in split_members(run) if "." not in s)[:2]
    log = run / "decisions.jsonl"
    log.write_text(json.dumps(decision(first, "drop", 1, reason="duplicate")), encoding="utf-8")
    more = write_decisions(tmp_path / "more.jsonl", [decision(second, "drop", 2, reason="duplicate")])
    result = run_cli("apply-decisions", run, more)
    assert result.exit_code == 0, result.output
    assert [d["id"] for d in read_jsonl(log)] == [first, second]
    assert log.read_text(encoding="utf-8").endswith("}\n")
    assert not {first, second} & set(split_members(run))


def test_a_cut_last_line_is_removed_with_a_word(tied: tuple[Path, str], tmp_path: Path) -> None:
    run, _ = tied
    first, second = sorted(s for s in split_members(run) if "." not in s)[:2]
    log = run / "decisions.jsonl"
    log.write_text(json.dumps(decision(first, "drop", 1, reason="duplicate")) + "\n"
                   + '{"id": "' + second + '", "act', encoding="utf-8")
    more = write_decisions(tmp_path / "more.jsonl", [decision(second, "drop", 2, reason="duplicate")])
    result = run_cli("apply-decisions", run, more)
    assert result.exit_code == 0, result.output
    assert "decisions.jsonl line 2: cut off" in result.output
    assert [d["id"] for d in read_jsonl(log)] == [first, second]


def test_invalid_bytes_are_named_per_line_and_the_rest_applies(
        tied: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory) -> None:
    run, _ = tied
    first, second = sorted(s for s in split_members(run) if "." not in s)[:2]
    log = run / "decisions.jsonl"
    good = json.dumps(decision(first, "drop", 1, reason="duplicate")).encode()
    bad = json.dumps(decision(second, "drop", 2, reason="duplicate", note="caf\u00e9")).encode()
    log.write_bytes(good + b"\n" + bad.replace(b"\\u00e9", b"\xe9") + b"\n")

    applied = run_cli("apply-decisions", run)
    assert applied.exit_code == 0, applied.output
    assert "skipped: decisions.jsonl line 2: not UTF-8 text (byte 0xe9" in applied.output
    assert first not in split_members(run) and second in split_members(run)

    review = run_cli("review", run)
    assert review.exit_code == 0, review.output
    assert "decisions.jsonl line 2: not UTF-8 text" in review.stderr
    config = shared_run(tmp_path_factory).parent / "config.yaml"
    built = run_cli("build", "--config", config, "--run-dir", run, "--no-progress")
    assert built.exit_code == 0, built.output
    assert "skipped decision: decisions.jsonl line 2: not UTF-8 text" in built.stderr
    assert first not in split_members(run)


# -- decisions on benign twins -------------------------------------------------------------------

@pytest.fixture(scope="module")
def twins_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("twin-decisions")
    return build(write_config(root, twins={"ratio": 0.5}), root / "run")


def gallery_index(run: Path) -> dict[str, Any]:
    text = (run / "review" / "data" / "index.js").read_text(encoding="utf-8")
    return json.loads(text[text.index("(") + 1:text.rindex(")")])


def test_a_twin_can_be_dropped_and_kept_again_but_not_moved(twins_run: Path, tmp_path: Path) -> None:
    run = copy_run(twins_run, tmp_path / "run")
    dropped_twin, moved, resolved = sorted(s for s, split in split_members(run).items()
                                           if split == "twins")[:3]
    log = write_decisions(run / "decisions.jsonl", [
        decision(dropped_twin, "drop", 1, reason="meaningless"),
        decision(moved, "move", 2, sub_category="Identity Theft"),
        decision(resolved, "resolve", 3, route="easy")])

    result = run_cli("apply-decisions", run)
    assert result.exit_code == 0, result.output
    assert "1 dropped, 0 moved, 0 resolved" in result.output
    assert f"skipped: {moved}: a twin takes its source's route and sub-category; move its " \
           f"source {moved.removesuffix('~t')} instead" in result.output
    assert f"resolve its source {resolved.removesuffix('~t')} instead" in result.output
    dropped = {r.id: r for r in RunDir(run).rejects() if r.stage == "review"}
    assert set(dropped) == {dropped_twin}
    assert dropped[dropped_twin].reason == RejectReason.dropped_by_reviewer
    assert dropped[dropped_twin].sub_category
    after = split_members(run)
    assert dropped_twin not in after and after[moved] == after[resolved] == "twins"
    mis_twins = json.loads((run / "export/mis/mis_test/mis_twins.json").read_text(encoding="utf-8"))
    assert dropped_twin not in exported_ids(run)
    assert len(mis_twins) == sum(1 for split in after.values() if split == "twins")

    assert run_cli("review", run).exit_code == 0
    rows = {row["i"]: row for row in gallery_index(run)["rows"]}
    assert rows[dropped_twin]["s"] == "dropped"
    assert rows[dropped_twin]["t"] == dropped_twin.removesuffix("~t")  # keep/drop only
    assert rows[moved]["t"] == moved.removesuffix("~t")

    with open(log, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(decision(dropped_twin, "keep", 5)) + "\n")
    again = run_cli("apply-decisions", run)
    assert again.exit_code == 0, again.output
    assert split_members(run)[dropped_twin] == "twins" and dropped_twin in exported_ids(run)


def test_a_build_keeps_the_logs_last_line_without_its_newline(
        tied: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory) -> None:
    """The build opens the run folder cutting half-written stage lines; the decisions log is
    people's file, not a stage's, and its complete last line is a decision."""
    run, _ = tied
    sample = sorted(s for s in split_members(run) if "." not in s)[0]
    log = run / "decisions.jsonl"
    log.write_text(json.dumps(decision(sample, "drop", 1, reason="duplicate")), encoding="utf-8")
    config = shared_run(tmp_path_factory).parent / "config.yaml"
    result = run_cli("build", "--config", config, "--run-dir", run, "--no-progress")
    assert result.exit_code == 0, result.output
    assert [d["id"] for d in read_jsonl(log)] == [sample]
    assert sample not in split_members(run)
