"""Typography pictures drawn in worker processes are the pictures the build's own process draws."""

from __future__ import annotations

import asyncio

import pytest

from mis_data.images import workers
from mis_data.images.fingerprint import phash_hex
from mis_data.images.typography import render_typography, typography_image

PICTURES = [("crowbar", "0:a.1", 64), ("jewelry store window at night", "0:a.2", 96),
            ("used syringe", "0:b.1", 64)]


async def draw_all() -> list[tuple[bytes, str]]:
    return list(await asyncio.gather(*(workers.draw_typography(*picture) for picture in PICTURES)))


def test_workers_draw_the_same_bytes_and_hashes_each_picture_its_own() -> None:
    drawn = asyncio.run(draw_all())
    assert [png for png, _ in drawn] == [render_typography(*picture) for picture in PICTURES]
    assert [phash for _, phash in drawn] == [phash_hex(typography_image(*picture))
                                             for picture in PICTURES]
    assert len({png for png, _ in drawn}) == len(PICTURES)


def test_one_core_draws_in_a_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workers.os, "cpu_count", lambda: 1)
    assert workers.process_pool() is None
    assert asyncio.run(draw_all())[0][0] == render_typography(*PICTURES[0])


def test_workers_started_early_draw_the_same_pictures() -> None:
    workers.start_workers()
    workers.start_workers()  # a second call starts nothing more
    assert len(workers._STARTING) == 1
    workers._STARTING[0].join(timeout=60)
    assert asyncio.run(draw_all())[1][0] == render_typography(*PICTURES[1])
