"""The LLaMA-Factory / ms-swift export as LLaMA-Factory's loader reads it (docs/formats.md §2, §3)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mis_data.export.checks import (
    IMAGE_TOKEN,
    ImageChecker,
    Report,
    array_records,
    jsonl_records,
    load_json,
)

DEFAULT_TAGS = {
    "sharegpt": {"role_tag": "from", "content_tag": "value", "user_tag": "human",
                 "assistant_tag": "gpt", "system_tag": "system", "observation_tag": "observation",
                 "function_tag": "function_call"},
    "openai": {"role_tag": "role", "content_tag": "content", "user_tag": "user",
               "assistant_tag": "assistant", "system_tag": "system", "observation_tag": "tool",
               "function_tag": "function_call"},
}


def lf_image_path(path: str, media_dir: Path) -> tuple[Path, bool]:
    """Where LLaMA-Factory opens an image (``converter.py`` ``_find_medias``): ``media_dir/path``
    when that is a file, else the path as given — relative to the folder training starts in.
    Returns the path and whether it was found in ``media_dir`` (an absolute path always is)."""
    joined = media_dir / path  # like os.path.join, an absolute ``path`` replaces media_dir
    if joined.is_file():
        return joined, True
    return Path(path), False


def check_lf_images(where: str, paths: list[Any], media_dir: Path, images: ImageChecker,
                    report: Report, entry_where: str) -> None:
    """Each path as LLaMA-Factory finds it: a missing or broken image is a problem, a path that loads from one
    folder only a warning on ``entry_where``."""
    for path in paths:
        if not isinstance(path, str) or not path:
            report.add(where, f"image path must be a non-empty string, got {path!r}")
            continue
        found, in_media_dir = lf_image_path(path, media_dir)
        if not in_media_dir and not found.is_file():
            report.add(where, f"image not found: {path} is not in media_dir {media_dir} "
                              "(LLaMA-Factory then opens it as given, where it does not exist either)")
            continue
        if not in_media_dir:
            report.warn(entry_where, f"images such as {path} are not in media_dir {media_dir}: "
                                     f"they load only when training starts in {Path.cwd()}")
        size = images.check(found)
        if isinstance(size, str):
            report.add(where, size)
        if not Path(path).is_absolute():
            report.warn(entry_where, "image paths are relative: LLaMA-Factory finds them through "
                                     "media_dir, but ms-swift opens them from the folder training "
                                     "starts in or ROOT_IMAGE_DIR (set ROOT_IMAGE_DIR="
                                     f"{media_dir.resolve()}, or export with --absolute-paths)")


def check_lf_messages(where: str, messages: Any, tags: dict[str, str], report: Report) -> int:
    """Role order as LLaMA-Factory's sharegpt converter wants it; returns the <image> count."""
    if not isinstance(messages, list) or not messages:
        report.add(where, "messages must be a non-empty list")
        return 0
    role, content = tags["role_tag"], tags["content_tag"]
    count = 0
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get(content), str):
            report.add(where, f"message {index}: needs a string '{content}'")
            continue
        count += message[content].count(IMAGE_TOKEN)
    turns = [m for m in messages if isinstance(m, dict)]
    if turns and turns[0].get(role) == tags["system_tag"]:
        turns = turns[1:]
    odd = {tags["user_tag"], tags["observation_tag"]}
    even = {tags["assistant_tag"], tags["function_tag"]}
    for index, message in enumerate(turns):
        allowed = odd if index % 2 == 0 else even
        if message.get(role) not in allowed:
            report.add(where, f"turn {index}: role {message.get(role)!r}, expected one of "
                              f"{sorted(allowed)} (roles must alternate; the example would be skipped)")
    if len(turns) % 2:
        report.add(where, f"{len(turns)} turns after the system turn: must be even "
                          "(the example would be skipped)")
    return count


def validate_llamafactory(folder: Path, media_dir: Path | None = None,
                          report: Report | None = None, **_: Any) -> Report:
    """Every ``dataset_info.json`` entry that names a local file (docs/formats.md §2)."""
    report, images = report or Report(), ImageChecker()
    info_path = folder / "dataset_info.json"
    if not info_path.is_file():
        report.add("dataset_info.json", "not found")
        return report
    info = load_json(info_path, folder, report)
    if not isinstance(info, dict) or not info:
        if info is not None:
            report.add("dataset_info.json", "must be a JSON object of named datasets")
        return report
    for name, entry in info.items():
        where = f"dataset_info.json: {name}"
        if not isinstance(entry, dict) or "file_name" not in entry:
            if not (isinstance(entry, dict) and ({"hf_hub_url", "ms_hub_url", "script_url"} & set(entry))):
                report.add(where, "needs 'file_name' (or a hub url)")
            continue
        formatting = entry.get("formatting", "alpaca")
        file = folder / str(entry["file_name"])
        if not file.is_file():
            report.add(where, f"file_name {entry['file_name']!r} does not resolve in this folder")
            continue
        if formatting not in DEFAULT_TAGS:  # alpaca rows carry no chat turns to check
            continue
        tags = {**DEFAULT_TAGS[formatting], **(entry.get("tags") or {})}
        columns = entry.get("columns") or {}
        default_messages = "messages" if formatting == "openai" else "conversations"
        messages_key = columns.get("messages", default_messages)
        images_key = columns.get("images")
        reader = jsonl_records if file.suffix == ".jsonl" else array_records
        for record_where, record in reader(file, folder, report):
            report.records += 1
            count = check_lf_messages(record_where, record.get(messages_key), tags, report)
            paths = record.get(images_key, []) if images_key else []
            if not isinstance(paths, list):
                report.add(record_where, f"'{images_key}' must be a list")
                continue
            if count != len(paths):
                report.add(record_where, f"{count} <image> tokens in the messages for {len(paths)} "
                                         "images (LLaMA-Factory raises ValueError)")
            if images_key:
                report.image_count(record_where, len(paths))
            check_lf_images(record_where, paths, media_dir or folder, images, report, where)
    return report
