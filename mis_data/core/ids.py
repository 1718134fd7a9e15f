"""Sample ids: the one place that makes them and reads them back.

Ids are hierarchical, so that a reject of an item is superseded by any later record of that item
or beneath it, and every file of a run joins by id alone:

* a concept pair: ``<pair>``, 16 hex digits of a hash of the seed, sub-category and objects;
* its images: ``<pair>.1`` ... ``<pair>.4``; its questions, each a sample: ``<pair>-1`` ... ``<pair>-3``;
* a sample's MIS-real variant: ``<sample>.real``; its benign twin: ``<sample>~t`` (whose new
  image is ``<sample>~t.<slot>``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from mis_data.core.config import ConfigError
from mis_data.core.records import normalize_object

REAL_SUFFIX = ".real"
TWIN_SUFFIX = "~t"


def stable_id(*parts: object) -> str:
    """16 hex digits of a hash of ``parts``: the same parts give the same id on every machine."""
    joined = "\x1f".join(str(part) for part in parts)
    return hashlib.sha256(joined.encode("utf-8")).hexdigest()[:16]


def sample_id(seed: int, sub_category: str, *objects: str) -> str:
    """The id of a concept pair, which its images and the ids of its questions hang from.

    A two-object id is what it was before samples could have more images.
    """
    return stable_id("sample", seed, sub_category, *(normalize_object(obj) for obj in objects))


def question_id(pair_id: str, index: int) -> str:
    """The sample id of question ``index`` (from 1) of a pair."""
    return f"{pair_id}-{index}"


def image_id(owner_id: str, slot: int) -> str:
    """The id of image ``slot`` (from 1) of a pair or of a twin."""
    return f"{owner_id}.{slot}"


def real_id(sample: str) -> str:
    """The id of a sample's MIS-real variant (the same question with real photos)."""
    return sample + REAL_SUFFIX


def without_real(item_id: str) -> str:
    """The sample a MIS-real variant belongs to; any other id unchanged."""
    return item_id.removesuffix(REAL_SUFFIX)


def twin_id(sample: str) -> str:
    """The id of a sample's benign twin."""
    return sample + TWIN_SUFFIX


def sample_of(item_id: str) -> str:
    """The sample (or pair) an image slot or MIS-real id belongs to: ``<pair>.1`` -> ``<pair>``,
    ``<pair>-2.real`` -> ``<pair>-2``; a sample or pair id unchanged."""
    return item_id.split(".")[0]


def parent_id(record_id: str) -> str:
    """The id a derived id hangs from: ``<pair>-2`` (a question) and ``<pair>.1`` (an image)
    hang from ``<pair>``; a plain id is its own parent."""
    for separator in ("-", "."):
        head, found, tail = record_id.rpartition(separator)
        if found and head and tail.isdigit():
            return head
    return record_id


def pair_of(item_id: str) -> str:
    """The concept pair any id of a build hangs from (images, questions, variants, twins): its
    first 16 hex digits, as ``sample_id`` makes them."""
    return item_id[:16]


def shard_of(item_id: str, count: int) -> int:
    """Which of ``count`` shards builds the pair an id hangs from: a pair, its images, its
    questions and their twins always land in the same shard."""
    return int(pair_of(item_id), 16) % count


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (0-based, as Slurm array and Kubernetes job indexes are)."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"i/N"`` with 0 <= i < N, else a ``ConfigError`` saying what is wrong."""
        head, slash, tail = text.partition("/")
        try:
            index, count = int(head), int(tail)
        except ValueError:
            index = count = -1
        if not slash or count < 1 or not 0 <= index < count:
            raise ConfigError(f"--shard {text!r}: expected i/N with 0 <= i < N (e.g. 0/4 ... 3/4)")
        return cls(index, count)

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def holds(self, item_id: str) -> bool:
        """Whether this shard builds the item (a pair, or anything that hangs from one)."""
        return shard_of(item_id, self.count) == self.index
