"""``push``: the right calls with a fake Hub, nothing on --dry-run, one-line errors, no token leak."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from datasets import load_dataset

from mis_data.core.config import ConfigError
from mis_data.export.hub import HubError, push
from tests.support.builds import run_cli, shared_run

TOKEN = "hf_secret_token_value_123"


class FakeApi:
    """Records calls; optionally fails the upload like a refused Hub request."""

    def __init__(self, fail: Exception | None = None) -> None:
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
        self.fail = fail

    def create_repo(self, *args: Any, **kwargs: Any) -> None:
        self.calls.append(("create_repo", args, kwargs))

    def upload_folder(self, *args: Any, **kwargs: Any) -> None:
        self.calls.append(("upload_folder", args, kwargs))
        if self.fail:
            raise self.fail


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shared_run(tmp_path_factory)


def test_push_creates_the_repo_and_uploads_the_hf_folder(run: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    api = FakeApi()
    result = push(run, "someone/mis-demo", private=True, api=api)
    folder = run / "export/hf"
    assert api.calls == [
        ("create_repo", ("someone/mis-demo",), {"repo_type": "dataset", "private": True, "exist_ok": True}),
        ("upload_folder", (), {"repo_id": "someone/mis-demo", "folder_path": str(folder),
                               "repo_type": "dataset",
                               "commit_message": "Upload MIS dataset export (mis-data)"}),
    ]
    assert result.uploaded and result.url == "https://huggingface.co/datasets/someone/mis-demo"
    assert "README.md" in dict(result.files)
    # what it would upload loads back, alone, from a copy of exactly those files
    copy = tmp_path / "uploaded"
    for name, _size in result.files:
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(folder / name, copy / name)
    loaded = load_dataset(str(copy), "easy", cache_dir=str(tmp_path / "cache"))["test"]
    assert len(loaded[0]["images"]) == 2


def test_dry_run_calls_nothing_and_needs_no_token(run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_TOKEN", raising=False)
    api = FakeApi()
    result = push(run, "someone/mis-demo", dry_run=True, api=api)
    assert api.calls == [] and not result.uploaded
    cli = run_cli("push", run, "--repo", "someone/mis-demo", "--dry-run")
    assert cli.exit_code == 0, cli.output
    assert "README.md" in cli.output and "dry run: nothing uploaded" in cli.output


def test_missing_token_is_one_line_naming_hf_token(run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_TOKEN", raising=False)
    api = FakeApi()
    with pytest.raises(ConfigError, match="HF_TOKEN"):
        push(run, "someone/mis-demo", api=api)
    assert api.calls == []
    result = run_cli("push", run, "--repo", "someone/mis-demo")
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "HF_TOKEN" in lines[0]


def test_refused_upload_is_one_clean_line_without_the_token(run: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    refusal = PermissionError(f"403 Forbidden: token {TOKEN} cannot write to someone/mis-demo\nmore")
    with pytest.raises(HubError) as error:
        push(run, "someone/mis-demo", api=FakeApi(fail=refusal))
    message = str(error.value)
    assert TOKEN not in message and "\n" not in message
    assert message.startswith("upload to someone/mis-demo failed: PermissionError: 403 Forbidden")
    assert error.value.__cause__ is None and error.value.__suppress_context__


def test_bad_repo_or_missing_export_is_a_config_error(run: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="OWNER/NAME"):
        push(run, "no-slash", dry_run=True)
    with pytest.raises(ConfigError, match="no Hugging Face export"):
        push(tmp_path, "someone/mis-demo", dry_run=True)


def test_hub_http_error_names_the_status(run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import httpx2
    from huggingface_hub.errors import HfHubHTTPError

    monkeypatch.setenv("HF_TOKEN", TOKEN)
    response = httpx2.Response(403, request=httpx2.Request("POST", "https://huggingface.co/api/x"))
    refusal = HfHubHTTPError("403 Forbidden: You don't have the rights", response=response)
    with pytest.raises(HubError, match=r"failed \(HTTP 403\): HfHubHTTPError: 403 Forbidden"):
        push(run, "someone/mis-demo", api=FakeApi(fail=refusal))


def test_cli_push_uses_the_token_from_the_environment_and_never_prints_it(
        run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub

    monkeypatch.setenv("HF_TOKEN", TOKEN)
    api, tokens = FakeApi(), []
    monkeypatch.setattr(huggingface_hub, "HfApi", lambda token: tokens.append(token) or api)
    result = run_cli("push", run, "--repo", "someone/mis-demo", "--private")
    assert result.exit_code == 0, result.output
    assert tokens == [TOKEN] and TOKEN not in result.output
    assert [call[0] for call in api.calls] == ["create_repo", "upload_folder"]
    assert api.calls[0][2]["private"] is True
    assert "uploaded to https://huggingface.co/datasets/someone/mis-demo" in result.output
