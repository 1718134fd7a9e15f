"""Static checks that a folder will load in its consumer (FORMATS.md §8), for any data.

The real loaders are poor judges: InternVL swaps a broken sample for a random other one,
LLaMA-Factory skips it with a log line, ms-swift pads missing ``<image>`` tags. So each check
here mirrors what the consumer asserts, and reports *every* problem with its place — JSONL
by line number (``file:12: ...``), JSON arrays by item index (``file[3]: ...``) — instead of
stopping at the first. It works on data mis-data did not make (e.g. the released MIS test set):
sub-category aliases are accepted through the taxonomy, and missing hard/real files are fine.

Besides problems (the consumer would fail or drop data) a report has warnings: things that load
only under a condition the file cannot guarantee — mostly relative paths that resolve from one
folder only (InternVL's meta, ms-swift's images). They are printed but do not fail validation.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from PIL import Image

from mis_data.taxonomy import Taxonomy

IMAGE_TOKEN = "<image>"
INTERNVL_SPECIAL = ("<img>", "</img>", "<IMG_CONTEXT>")
MIS_FIELDS = ("id", "category", "sub_category", "question", "image_path1", "image_path2")
MIS_SPLITS = ("easy", "hard", "real")
FORMATS = ("mis", "internvl", "llamafactory", "hf")


@dataclass
class Report:
    """Problems found (one line each, already located) and how many records were read."""

    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    records: int = 0

    def add(self, where: str, message: str) -> None:
        self.problems.append(f"{where}: {message}")

    def warn(self, where: str, message: str) -> None:
        line = f"{where}: {message}"
        if line not in self.warnings:
            self.warnings.append(line)

    @property
    def ok(self) -> bool:
        return not self.problems


class ImageChecker:
    """Opens each image once (``convert("RGB")`` like the loaders) and remembers its size."""

    def __init__(self) -> None:
        self._sizes: dict[Path, tuple[int, int] | str] = {}

    def check(self, path: Path) -> tuple[int, int] | str:
        """The image's (width, height), or a one-line reason it cannot be used."""
        if path not in self._sizes:
            if not path.is_file():
                self._sizes[path] = f"image not found: {path}"
            else:
                try:
                    with Image.open(path) as image:
                        self._sizes[path] = image.convert("RGB").size
                except Exception as error:  # any decoder failure is the same problem to a loader
                    self._sizes[path] = f"image does not open: {path} ({type(error).__name__})"
        return self._sizes[path]


def rel(path: Path, base: Path) -> str:
    try:
        return path.relative_to(base).as_posix()
    except ValueError:
        return str(path)


def load_json(path: Path, base: Path, report: Report) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        report.add(rel(path, base), f"not valid JSON: {error}")
        return None


def jsonl_records(path: Path, base: Path, report: Report) -> Iterator[tuple[str, dict[str, Any]]]:
    """(``file:line``, record) for each JSON object line; bad lines become problems."""
    name = rel(path, base)
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{name}:{number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                report.add(where, f"not valid JSON: {error.msg}")
                continue
            if not isinstance(record, dict):
                report.add(where, "a line must be a JSON object")
                continue
            yield where, record


def array_records(path: Path, base: Path, report: Report) -> Iterator[tuple[str, dict[str, Any]]]:
    """(``file[index]``, item) for each object of a JSON array file."""
    data = load_json(path, base, report)
    name = rel(path, base)
    if data is None:
        return
    if not isinstance(data, list):
        report.add(name, "must be a JSON array of items")
        return
    for index, item in enumerate(data):
        if not isinstance(item, dict):
            report.add(f"{name}[{index}]", "an item must be a JSON object")
            continue
        yield f"{name}[{index}]", item


# -- InternVL ------------------------------------------------------------------------------

def check_internvl_turns(where: str, record: dict[str, Any], report: Report) -> None:
    turns = record.get("conversations")
    if not isinstance(turns, list) or not turns:
        report.add(where, "'conversations' must be a non-empty list")
        return
    if isinstance(turns[0], dict) and turns[0].get("from") == "system":
        turns = turns[1:]
    human_images = 0
    for index, turn in enumerate(turns):
        expected = "human" if index % 2 == 0 else "gpt"
        if not isinstance(turn, dict):
            report.add(where, f"turn {index} is not an object")
            continue
        if turn.get("from") != expected:
            report.add(where, f"turn {index}: 'from' is {turn.get('from')!r}, expected {expected!r} "
                              "(turns alternate human/gpt)")
        value = turn.get("value")
        if not isinstance(value, str):
            hint = " ('text' is a docs typo; the loader reads 'value')" if "text" in turn else ""
            report.add(where, f"turn {index}: missing string 'value'{hint}")
            continue
        if turn.get("from") == "human":
            human_images += value.count(IMAGE_TOKEN)
        elif IMAGE_TOKEN in value:
            report.add(where, f"turn {index}: <image> in a gpt turn (never replaced by the loader)")
        for token in INTERNVL_SPECIAL:
            if token in value:
                report.add(where, f"turn {index}: contains {token} (breaks the image token count)")
    if len(turns) % 2:
        report.add(where, "the last turn must be from gpt")
    images = record.get("image")
    if isinstance(images, list) and human_images != len(images):
        report.add(where, f"{human_images} <image> in human turns for {len(images)} images")


def check_internvl_record(where: str, record: dict[str, Any], root: Path, images: ImageChecker,
                          report: Report) -> None:
    paths = record.get("image")
    if not isinstance(paths, list) or not paths or not all(isinstance(p, str) for p in paths):
        report.add(where, "'image' must be a non-empty list of paths")
        paths = []
    sizes = []
    for path in paths:
        size = images.check(root / path)
        if isinstance(size, str):
            report.add(where, size)
        sizes.append(size)
    check_internvl_turns(where, record, report)
    for key, axis in (("width_list", 0), ("height_list", 1)):
        if key not in record:
            continue
        values = record[key]
        if not isinstance(values, list) or len(values) != len(paths):
            report.add(where, f"'{key}' must list one size per image ({len(paths)})")
            continue
        real = [size[axis] if isinstance(size, tuple) else None for size in sizes]
        if any(r is not None and v != r for v, r in zip(values, real, strict=True)):
            report.add(where, f"'{key}' is {values} but the images measure {real}")


def validate_internvl(folder: Path, **_: Any) -> Report:
    """``meta.json`` entries and every line of their annotation files (FORMATS.md §1)."""
    report, images = Report(), ImageChecker()
    meta_path = folder if folder.is_file() else folder / "meta.json"
    base = meta_path.parent
    if not meta_path.is_file():
        report.add(meta_path.name, "meta file not found")
        return report
    meta = load_json(meta_path, base, report)
    if meta is None:
        return report
    if not isinstance(meta, dict) or not meta:
        report.add(meta_path.name, "must be a JSON object of named datasets")
        return report
    for name, entry in meta.items():
        where = f"{meta_path.name}: {name}"
        if not isinstance(entry, dict):
            report.add(where, "entry must be an object")
            continue
        missing = [key for key in ("root", "annotation", "data_augment", "repeat_time") if key not in entry]
        if missing:
            report.add(where, f"missing key(s) {', '.join(missing)}")
        annotation = str(entry.get("annotation", ""))
        if not annotation.endswith(".jsonl"):
            report.add(where, f"annotation {annotation!r} must end with .jsonl (the loader asserts it)")
            continue
        if "max_dynamic_patch" in entry and not isinstance(entry["max_dynamic_patch"], int):
            report.add(where, "max_dynamic_patch must be an integer")
        annotation_path = base / annotation
        if not annotation_path.is_file() and Path(annotation).is_file():
            annotation_path = Path(annotation)
        if not annotation_path.is_file():
            report.add(where, f"annotation file not found: {annotation}")
            continue
        root = base / str(entry.get("root", ""))
        if not root.is_dir() and Path(str(entry.get("root", ""))).is_dir():
            root = Path(str(entry["root"]))  # InternVL itself resolves against the working dir
        relative = [key for key in ("root", "annotation") if not Path(str(entry.get(key, ""))).is_absolute()]
        if relative:
            report.warn(where, f"{' and '.join(relative)} relative: InternVL opens them from the folder "
                               f"training starts in, so they resolve only from {base.resolve()} "
                               "(start there, or export with --absolute-paths)")
        for line_where, record in jsonl_records(annotation_path, base, report):
            report.records += 1
            check_internvl_record(line_where, record, root, images, report)
    return report


# -- LLaMA-Factory -------------------------------------------------------------------------

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


def validate_llamafactory(folder: Path, media_dir: Path | None = None, **_: Any) -> Report:
    """Every ``dataset_info.json`` entry that names a local file (FORMATS.md §2)."""
    report, images = Report(), ImageChecker()
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
            check_lf_images(record_where, paths, media_dir or folder, images, report, where)
    return report


# -- MIS evaluation layout -----------------------------------------------------------------

def check_mis_item(where: str, item: dict[str, Any], test_dir: Path, taxonomy: Taxonomy | None,
                   seen_ids: set[Any], images: ImageChecker, report: Report) -> None:
    missing = [key for key in MIS_FIELDS if key not in item]
    extra = [key for key in item if key not in MIS_FIELDS]
    if missing:
        report.add(where, f"missing key(s) {', '.join(missing)}")
    if extra:
        report.add(where, f"unexpected key(s) {', '.join(extra)}")
    item_id = item.get("id")
    if "id" in item:
        if not isinstance(item_id, int) or isinstance(item_id, bool):
            report.add(where, f"id must be an integer, got {item_id!r}")
        elif item_id in seen_ids:
            report.add(where, f"id {item_id} appears twice")
        seen_ids.add(item_id)
    for key in ("category", "sub_category", "question"):
        if key in item and (not isinstance(item[key], str) or not item[key].strip()):
            report.add(where, f"{key} must be a non-empty string")
    if taxonomy is not None and isinstance(item.get("sub_category"), str):
        canonical = taxonomy.canonical(item["sub_category"])
        if canonical is None:
            report.add(where, f"unknown sub_category {item['sub_category']!r}")
        elif (isinstance(item.get("category"), str)
              and item["category"].strip().casefold() != taxonomy.category_of(canonical).casefold()):
            report.add(where, f"category {item['category']!r} does not match sub_category "
                              f"{item['sub_category']!r} ({taxonomy.category_of(canonical)})")
    for key in ("image_path1", "image_path2"):
        path = item.get(key)
        if key not in item:
            continue
        if not isinstance(path, str) or not path or Path(path).is_absolute():
            report.add(where, f"{key} must be a path relative to mis_test/")
            continue
        size = images.check(test_dir / path)
        if isinstance(size, str):
            report.add(where, f"{key}: {size}")
    if item.get("image_path1") and item.get("image_path1") == item.get("image_path2"):
        report.add(where, "image_path1 and image_path2 are the same file")


def validate_mis(folder: Path, taxonomy: Taxonomy | None = None, **_: Any) -> Report:
    """``mis_test/mis_{easy,hard,real}.json`` as the MIS eval scripts read them (FORMATS.md §5)."""
    report, images = Report(), ImageChecker()
    test_dir = folder / "mis_test" if (folder / "mis_test").is_dir() else folder
    files = [test_dir / f"mis_{split}.json" for split in MIS_SPLITS
             if (test_dir / f"mis_{split}.json").is_file()]
    if not (test_dir / "mis_easy.json").is_file():
        report.add(rel(test_dir / "mis_easy.json", folder), "not found")
    for file in files:
        seen: set[Any] = set()
        for where, item in array_records(file, folder, report):
            report.records += 1
            check_mis_item(where, item, test_dir, taxonomy, seen, images, report)
    return report


# -- Hugging Face repository folder --------------------------------------------------------

def card_configs(folder: Path, report: Report) -> list[dict[str, Any]]:
    readme = folder / "README.md"
    if not readme.is_file():
        report.add("README.md", "not found")
        return []
    text = readme.read_text(encoding="utf-8")
    if not text.startswith("---\n") or "\n---\n" not in text[4:]:
        report.add("README.md", "no YAML front matter")
        return []
    try:
        meta = yaml.safe_load(text[4:text.index("\n---\n", 4)]) or {}
    except yaml.YAMLError as error:
        report.add("README.md", f"invalid YAML front matter: {str(error).splitlines()[0]}")
        return []
    configs = meta.get("configs") if isinstance(meta, dict) else None
    if not isinstance(configs, list) or not configs:
        report.add("README.md", "front matter declares no configs")
        return []
    return [c for c in configs if isinstance(c, dict) and c.get("config_name")]


# The feature types datasets 3.x can read from a file's metadata (its ``_FEATURE_TYPES``, 3.6.0);
# 4.0 added ``List``, which 3.x rejects with "Feature type 'List' not found".
DATASETS3_TYPES = frozenset({"Value", "ClassLabel", "Translation", "TranslationVariableLanguages",
                             "LargeList", "Sequence", "Array2D", "Array3D", "Array4D", "Array5D",
                             "Audio", "Image", "Video", "Pdf"})


def stored_types(feature: Any) -> set[str]:
    """Every ``_type`` in a serialized features dict."""
    if isinstance(feature, list):
        return set().union(*(stored_types(item) for item in feature))
    if not isinstance(feature, dict):
        return set()
    own = {feature["_type"]} if isinstance(feature.get("_type"), str) else set()
    return own.union(*(stored_types(value) for key, value in feature.items() if key != "_type"))


def check_stored_features(file: Path, folder: Path, report: Report) -> None:
    """The features a Parquet file declares must be readable by datasets 3.x (the oldest the
    export supports), or every config fails there before a row is read."""
    import pyarrow.parquet as pq

    try:
        metadata = pq.read_schema(file).metadata or {}
        features = json.loads(metadata.get(b"huggingface", b"{}")).get("info", {}).get("features", {})
    except Exception as error:  # a file that is not Parquet is load_dataset's problem to report
        report.add(rel(file, folder), f"unreadable Parquet schema ({type(error).__name__})")
        return
    unknown = sorted(stored_types(features) - DATASETS3_TYPES)
    if unknown:
        report.add(rel(file, folder), f"stores feature type(s) {', '.join(unknown)}: datasets < 4.0 "
                                      "cannot load it (ValueError: Feature type ... not found)")


def validate_hf(folder: Path, **_: Any) -> Report:
    """``load_dataset(folder, config)`` for every config; two decoded images per row."""
    from datasets import Image as ImageFeature
    from datasets import List, load_dataset

    from mis_data.sources import quiet_datasets

    report = Report()
    with tempfile.TemporaryDirectory(prefix="mis-validate-") as cache, quiet_datasets():
        for config in card_configs(folder, report):
            name = config["config_name"]
            for data_file in config.get("data_files") or []:
                pattern = data_file.get("path", "") if isinstance(data_file, dict) else str(data_file)
                matches = sorted(folder.glob(pattern))
                if not matches:
                    report.add("README.md", f"config {name}: no file matches {pattern!r}")
                for file in matches:
                    if file.suffix == ".parquet":
                        check_stored_features(file, folder, report)
            try:
                loaded = load_dataset(str(folder), name, cache_dir=cache)
            except Exception as error:
                first = (str(error).splitlines() or [""])[0][:300]
                report.add("README.md", f"config {name}: load_dataset failed: "
                                        f"{type(error).__name__}: {first}")
                continue
            for split, dataset in loaded.items():
                where = f"{name}/{split}"
                if dataset.features.get("images") != List(ImageFeature()):
                    report.add(where, f"feature 'images' is {dataset.features.get('images')}, "
                                      "expected List(Image())")
                    continue
                for index, row in enumerate(dataset):
                    report.records += 1
                    pictures = row["images"]
                    if len(pictures) != 2:
                        report.add(f"{where}[{index}]", f"{len(pictures)} images, expected 2")
                    if not all(isinstance(p, Image.Image) and p.size[0] > 0 for p in pictures):
                        report.add(f"{where}[{index}]", "an image did not decode")
    return report


VALIDATORS: dict[str, Callable[..., Report]] = {
    "mis": validate_mis,
    "internvl": validate_internvl,
    "llamafactory": validate_llamafactory,
    "hf": validate_hf,
}


def detect_format(folder: Path) -> str | None:
    """Guess a folder's format from its marker file."""
    markers = (("dataset_info.json", "llamafactory"), ("meta.json", "internvl"),
               ("mis_test", "mis"), ("mis_easy.json", "mis"), ("README.md", "hf"))
    return next((fmt for marker, fmt in markers if (folder / marker).exists()), None)


def validate(path: Path, fmt: str | None = None, taxonomy: Taxonomy | None = None,
             media_dir: Path | None = None) -> tuple[str, Report]:
    """Check ``path`` as ``fmt`` (guessed when None); a run folder means its ``export/<fmt>``."""
    path = Path(path)
    if fmt and (path / "export" / fmt).is_dir():
        path = path / "export" / fmt
    fmt = fmt or detect_format(path)
    if fmt not in VALIDATORS:
        report = Report()
        report.add(str(path), f"cannot tell the format; pass --format ({'|'.join(FORMATS)})")
        return fmt or "?", report
    return fmt, VALIDATORS[fmt](path, taxonomy=taxonomy, media_dir=media_dir)
