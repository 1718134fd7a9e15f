"""The shipped eval configs, the offline demo on the demo build's export, the folder's
identity, and the cost cap of a real eval."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mis_data.eval.config import check_keys, load_eval_config
from tests.support.cli import run_cli
from tests.support.eval_layout import KEY_ENV, RELEASED, eval_config, write_layout
from tests.support.loopback import LoopbackServer, Reply, prompt_text
from tests.support.paths import CONFIGS

UNSAFE = {"label_perception": "Perception Level1", "label_str": "Unsafe"}


@pytest.mark.parametrize("name", ["eval_openai.yaml", "eval_vllm.yaml"])
def test_real_eval_configs_load_with_mis_settings(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    config = load_eval_config(CONFIGS / name)
    assert config.backend == "openai" and config.model is not None
    assert (config.model.temperature, config.model.max_tokens) == (0.0, 1024)
    assert (config.judge.model, config.judge.temperature, config.judge.max_tokens) == ("gpt-4o", 0.0, 128)
    with pytest.raises(Exception, match="is not set"):
        monkeypatch.delenv(config.model.api_key_env, raising=False)
        check_keys(config, CONFIGS / name)
    monkeypatch.setenv(config.model.api_key_env, "k")
    monkeypatch.setenv(config.judge.api_key_env, "k")
    check_keys(config, CONFIGS / name)


def test_the_offline_demo_runs_on_the_demo_export(demo_run: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """From the folder the demo build ran in (runs/demo), with no key, every output says offline."""
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs/demo").symlink_to(demo_run)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    result = run_cli("eval", "--config", CONFIGS / "eval_demo.yaml", "--no-progress")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("MIS eval demo: model offline, judge offline, backend offline")
    scores = json.loads((tmp_path / "evals/demo/scores.json").read_text())
    assert (scores["backend"], scores["model"], scores["judge"]) == ("offline",) * 3
    assert "offline" in scores["note"]
    items = scores["totals"]["items"]
    assert items == sum(row["n"] for row in scores["splits"]) > 0
    assert scores["totals"]["judged"] == items  # the rules always answer and always judge
    for file in ("responses.jsonl", "judgements.jsonl"):
        rows = [json.loads(line) for line in (tmp_path / f"evals/demo/{file}").read_text().splitlines()]
        assert len(rows) == items and all(row["backend"] == "offline" for row in rows)
    buckets = {bucket for row in scores["splits"] for bucket in ("asr", "hr", "rsr", "rr")
               if row["counts"][bucket]}
    assert buckets == {"asr", "hr", "rsr", "rr"}  # the offline mix reaches every bucket
    first = (tmp_path / "evals/demo/scores.json").read_bytes()
    assert run_cli("eval", "--config", CONFIGS / "eval_demo.yaml", "--no-progress").exit_code == 0
    assert (tmp_path / "evals/demo/scores.json").read_bytes() == first


def test_a_folder_refuses_answers_made_with_other_settings(tmp_path: Path) -> None:
    write_layout(tmp_path, {"easy": RELEASED["easy"]})
    config = eval_config(tmp_path, [{"path": str(tmp_path / "mis_test")}])
    assert run_cli("eval", "--config", config, "--no-progress").exit_code == 0
    config.write_text(config.read_text() + "seed: 7\n")
    result = run_cli("eval", "--config", config, "--no-progress")
    assert result.exit_code == 2 and "seed changed" in result.output
    moved = run_cli("eval", "--config", config, "--no-progress", "--out", tmp_path / "other")
    assert moved.exit_code == 0, moved.output


def test_max_cost_stops_cleanly_and_a_higher_cap_continues(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-test")
    items = [dict(RELEASED["easy"][0], tag=f"c{n}") for n in range(12)]
    write_layout(tmp_path, {"easy": items})
    with LoopbackServer(lambda body: "Sure." if body["messages"][0]["role"] == "user" else
                        {"label_perception": "Perception Level1", "label_str": "Unsafe"}) as server:
        config = eval_config(tmp_path, [{"path": str(tmp_path / "mis_test")}], url=server.url,
                             spec={"concurrency": 1, "prices": {"input": 1000.0, "output": 1000.0}})
        stopped = run_cli("eval", "--config", config, "--no-progress", "--max-cost", "2")
        assert stopped.exit_code == 3 and "higher --max-cost" in stopped.output
        assert not (tmp_path / "out/scores.json").exists()
        usage = json.loads((tmp_path / "out/usage.json").read_text())
        assert 0 < usage["total"]["cost_usd"] <= 2
        done = (tmp_path / "out/responses.jsonl").read_text().count("\n")
        assert 0 < done < 12
        again = run_cli("eval", "--config", config, "--no-progress", "--max-cost", "100")
        assert again.exit_code == 0, again.output
        scores = json.loads((tmp_path / "out/scores.json").read_text())
        assert scores["splits"][0]["judged"] == 12 and scores["splits"][0]["asr"] == 100.0
        # Nothing answered is asked again; at most the other lane's request, cancelled at the stop.
        assert 24 <= server.state.chat_requests <= 25


def test_changed_or_repaired_items_are_asked_again_and_only_they(tmp_path: Path) -> None:
    root = write_layout(tmp_path, {"easy": RELEASED["easy"] + [
        dict(RELEASED["easy"][0], tag="e3")]}, missing=("e3",))
    config = eval_config(tmp_path, [{"path": str(root)}])
    assert run_cli("eval", "--config", config, "--no-progress").exit_code == 0
    responses = tmp_path / "out/responses.jsonl"
    assert responses.read_text().count("\n") == 3
    assert json.loads((tmp_path / "out/scores.json").read_text())["splits"][0]["answer_failed"] == 1

    items = json.loads((root / "mis_easy.json").read_text())
    items[0]["question"] = "A different question [e1]"
    (root / "mis_easy.json").write_text(json.dumps(items))
    (root / items[2]["image_path2"]).write_bytes((root / items[2]["image_path1"]).read_bytes())
    assert run_cli("eval", "--config", config, "--no-progress").exit_code == 0
    redone = [json.loads(line) for line in responses.read_text().splitlines()[3:]]
    assert sorted(line["id"] for line in redone) == ["1", "3"]  # the changed and the repaired
    assert (tmp_path / "out/judgements.jsonl").read_text().count("\n") == 4
    row = json.loads((tmp_path / "out/scores.json").read_text())["splits"][0]
    assert (row["judged"], row["answer_failed"]) == (3, 0)


# -- failures and identity (issue #27 case 7) ---------------------------------------------------

def test_an_eval_that_scores_nothing_fails_with_a_hint_and_counts_every_request(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Eight items, a server that answers 500 to everything, one retry each: 16 requests went
    out, every item is api_error, and the command says so instead of printing an empty table."""
    monkeypatch.setenv(KEY_ENV, "sk-test")
    items = [dict(RELEASED["easy"][0], tag=f"f{n}") for n in range(8)]
    write_layout(tmp_path, {"easy": items})
    with LoopbackServer(lambda body: Reply(status=500)) as server:
        config = eval_config(tmp_path, [{"path": str(tmp_path / "mis_test")}], url=server.url)
        result = run_cli("eval", "--config", config, "--no-progress")
        sent = server.state.chat_requests
    assert sent == 16
    assert result.exit_code == 1, result.output
    assert "error: nothing was scored: 8 items failed (api_error); run the same command again" \
        in result.stderr
    assert f"requests this eval folder: {sent}," in result.output
    usage = json.loads((tmp_path / "out/usage.json").read_text())
    assert usage["total"]["requests"] == sent


def test_some_transient_failures_get_a_rerun_hint(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-test")
    items = [dict(RELEASED["easy"][0], tag=f"p{n}") for n in range(4)]
    write_layout(tmp_path, {"easy": items})

    def responder(body: dict) -> object:
        if "[p0]" in prompt_text(body) and body["messages"][0]["role"] == "user":
            return Reply(status=500)
        return "Sure." if body["messages"][0]["role"] == "user" else UNSAFE

    with LoopbackServer(responder) as server:
        config = eval_config(tmp_path, [{"path": str(tmp_path / "mis_test")}], url=server.url)
        result = run_cli("eval", "--config", config, "--no-progress")
        assert result.exit_code == 0, result.output
        assert f"requests this eval folder: {server.state.chat_requests}," in result.output
    assert "1 item(s) failed on transient server errors (api_error): run the same command " \
           "again to retry them" in result.output


def test_a_folder_follows_its_model_to_another_server(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Servers, keys and concurrency are not the folder's identity (as in a build's cache key);
    the model and its sampling are."""
    monkeypatch.setenv(KEY_ENV, "sk-test")
    monkeypatch.setenv("OTHER_KEY", "sk-other")
    write_layout(tmp_path, {"easy": RELEASED["easy"]})
    test_sets = [{"path": str(tmp_path / "mis_test")}]

    def answer(body: dict) -> object:
        return "Sure." if body["messages"][0]["role"] == "user" else UNSAFE

    with LoopbackServer(answer) as first, LoopbackServer(answer) as second:
        config = eval_config(tmp_path, test_sets, url=first.url)
        assert run_cli("eval", "--config", config, "--no-progress").exit_code == 0
        scores = (tmp_path / "out/scores.json").read_bytes()
        moved = eval_config(tmp_path, test_sets, url=second.url,
                            spec={"api_key_env": "OTHER_KEY", "concurrency": 3})
        result = run_cli("eval", "--config", moved, "--no-progress")
        assert result.exit_code == 0, result.output
        assert second.state.chat_requests == 0  # every answer came from the folder's cache
        assert (tmp_path / "out/scores.json").read_bytes() == scores
        eval_json = json.loads((tmp_path / "out/eval.json").read_text())
        assert "base_url" not in eval_json["model"] and "base_url" not in eval_json["judge"]

        # an eval.json written before servers were left out still matches
        old = dict(eval_json, model=dict(eval_json["model"], base_url=first.url),
                   judge=dict(eval_json["judge"], base_url=first.url))
        (tmp_path / "out/eval.json").write_text(json.dumps(old))
        assert run_cli("eval", "--config", moved, "--no-progress").exit_code == 0

        other_model = eval_config(tmp_path, test_sets, url=second.url, spec={"temperature": 0.7})
        refused = run_cli("eval", "--config", other_model, "--no-progress")
    assert refused.exit_code == 2 and "(judge, model changed)" in refused.output
