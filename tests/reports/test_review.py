"""The review gallery in a real headless Chromium: every sample is reachable, filters live in the
URL hash, model text stays text, and a reviewer's clicks and keys become decisions that
`mis-data apply-decisions` turns into rejects, routes and exports.

Chromium is the system one (driven by Playwright, never downloaded). It is optional on a laptop
(the browser tests skip) but required in CI (they fail).
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from mis_data.core.records import JudgementRecord, RejectReason, RejectRecord
from mis_data.core.rundir import RunDir
from mis_data.reports.review import THUMB_SIDE, write_review
from mis_data.reports.review.serve import serve
from tests.support.browser import open_gallery, post
from tests.support.builds import copy_run, read_jsonl, run_cli, shared_run, tree_hashes
from tests.support.decisions import exported_ids, make_tie, split_members

HOSTILE = '<script>alert("x")</script> & <img src=x onerror=alert(1)>'






@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy of the shared run: one tie, two rejects (one hostile), a hostile question."""
    run = copy_run(shared_run(tmp_path_factory), tmp_path_factory.mktemp("review") / "run")
    tie = sorted(row["id"] for row in read_jsonl(run / "splits" / "easy.jsonl"))[0]
    make_tie(run, tie)
    assert run_cli("split", run).exit_code == 0
    with RunDir(run) as folder:
        folder.reject(RejectRecord(stage="instructions", id="feedface00000001",
                                   reason=RejectReason.refused, detail="I can't help with that.",
                                   sub_category="Identity Theft"))
        folder.reject(RejectRecord(stage="labels", id="feedface00000002",
                                   reason=RejectReason.label_apology, detail=HOSTILE,
                                   sub_category="Weapon-Related Violence"))
    hard = run / "splits" / "hard.jsonl"
    rows = read_jsonl(hard)
    rows[0]["question"] = HOSTILE
    hard.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return run


@pytest.fixture(scope="module")
def gallery(run_dir: Path) -> Path:
    return write_review(run_dir)


def samples_of(run: Path) -> int:
    """What the gallery lists: every question, plus the MIS-real copies in the splits."""
    real = run / "splits" / "real.jsonl"
    return len(read_jsonl(run / "instructions.jsonl")) + (len(read_jsonl(real)) if real.exists() else 0)




def show(page: Any, fragment: str) -> None:
    """Change the view as a bookmark would (hash only; no reload)."""
    page.evaluate("fragment => { location.hash = fragment; }", fragment)
    page.wait_for_function("fragment => document.body.dataset.rendered === '#' + fragment",
                           arg=fragment)


def count_text(page: Any, element_id: str) -> str:
    return page.locator(f"#{element_id}").inner_text()


def test_files_are_small_relative_and_never_remote(run_dir: Path, gallery: Path) -> None:
    assert gallery == (run_dir / "review" / "index.html").resolve()
    folder = gallery.parent
    assert gallery.stat().st_size < 10_000  # the shell; data comes as separate scripts
    thumbs = sorted((folder / "thumbs").glob("*.jpg"))
    assert thumbs
    for thumb in thumbs[:5]:
        with Image.open(thumb) as image:
            assert image.format == "JPEG" and max(image.size) <= THUMB_SIDE
    for name in ("index.html", "gallery.js", "gallery.css", "data/index.js"):
        text = (folder / name).read_text(encoding="utf-8")
        assert "http://" not in text and "https://" not in text, name  # no CDN, nothing remote
        assert "file://" not in text, name
    assert sorted(p.name for p in (folder / "data").glob("details-*.js"))[0] == "details-000.js"


def test_model_text_is_escaped(run_dir: Path, gallery: Path, page: Any) -> None:
    data = (gallery.parent / "data" / "index.js").read_text(encoding="utf-8")
    assert HOSTILE not in data and json.dumps(HOSTILE)[1:-1] in data  # JSON string, not markup
    open_gallery(page, gallery, "#status=hard")
    card = page.locator("article.card").first
    assert card.locator(".question").inner_text() == HOSTILE
    show(page, "tab=rejects&rreason=label_apology")
    assert page.locator("tr.reject td.detail").first.inner_text() == HOSTILE
    assert page.locator("img[src='x']").count() == 0 and page.locator("main script").count() == 0


def test_every_sample_is_listed_and_paged(demo_run: Path, tmp_path: Path, page: Any) -> None:
    run = copy_run(demo_run, tmp_path / "run")  # 504 questions: several pages
    total = samples_of(run)
    open_gallery(page, write_review(run))
    assert count_text(page, "sample-count") == f"{total} samples shown"
    assert page.locator("article.card").count() == min(48, total)
    assert "page 1 of" in page.locator("#pager-top").inner_text()
    page.locator("#pager-top [data-page=next]").click()
    page.wait_for_function("location.hash.includes('page=2')")
    assert page.locator("article.card").first.get_attribute("data-id") not in (None, "")
    assert count_text(page, "reject-count").endswith("shown")
    page.locator("article.card").first.locator(".more details").first.wait_for()


@pytest.mark.parametrize("status", ["hard", "train", "queue"])
def test_hash_filters_by_status(run_dir: Path, gallery: Path, page: Any, status: str) -> None:
    members = split_members(run_dir)
    expected = 1 if status == "queue" else sum(1 for s in members.values() if s == status)
    assert expected
    open_gallery(page, gallery, f"#status={status}")
    assert count_text(page, "sample-count") == f"{expected} sample{'' if expected == 1 else 's'} shown"
    statuses = {card.get_attribute("data-status") for card in page.locator("article.card").all()}
    assert statuses == {status}


def test_filters_by_sub_category_reason_flag_and_search(run_dir: Path, gallery: Path,
                                                         page: Any) -> None:
    rows = read_jsonl(run_dir / "instructions.jsonl")
    concepts = {c["id"]: c for c in read_jsonl(run_dir / "concepts.jsonl")}
    judged = RunDir(run_dir).read_by_id("judgements", JudgementRecord)
    sub_of = {r["id"]: judged[r["id"]].sub_category if r["id"] in judged
              else concepts[r["concept_id"]]["sub_category"] for r in rows}
    sub = sorted(sub_of.values())[0]
    open_gallery(page, gallery, "#sub=" + sub.replace(" ", "%20"))
    expected = sum(1 for s in sub_of.values() if s == sub)
    assert count_text(page, "sample-count").startswith(f"{expected} sample")
    show(page, "tab=rejects&rreason=refused")
    assert count_text(page, "reject-count") == "1 reject shown"
    assert page.locator("#samples-tab").is_hidden()
    show(page, "flags=disagree")
    assert count_text(page, "sample-count") == "1 sample shown"  # the tie: its judges split
    label = read_jsonl(run_dir / "splits" / "train.jsonl")[0]["label"]
    words = " ".join(label.split()[3:7]).lower()
    show(page, "q=" + words.replace(" ", "%20"))
    page.wait_for_function("document.getElementById('search-status').textContent === ''")
    found = int(count_text(page, "sample-count").split()[0])
    assert found >= 1 and found < samples_of(run_dir)


def test_sub_category_links_and_side_by_side_zoom(run_dir: Path, gallery: Path, page: Any) -> None:
    open_gallery(page, gallery, "#tab=subs")
    row = page.locator("table.subs tr[data-sub]").first
    row.locator("td.n a").first.click()
    page.wait_for_function("location.hash.includes('status=')")
    assert page.locator("#samples-tab").is_visible()
    card = page.locator("article.card").first
    card.locator("img[data-zoom='1']").click()
    assert page.locator("#zoom").is_visible()
    for slot in (1, 2):
        page.wait_for_function(f"document.getElementById('zoom-{slot}').naturalWidth > 0")
    page.keyboard.press("Escape")
    assert page.locator("#zoom").is_hidden()


def card_of(page: Any, sample: str) -> Any:
    show(page, f"q={sample}")
    card = page.locator(f"article.card[data-id='{sample}']")
    card.wait_for()
    return card


def test_clicks_and_keys_become_decisions_that_apply(run_dir: Path, page: Any,
                                                      tmp_path: Path) -> None:
    run = copy_run(run_dir, tmp_path / "run")
    gallery = write_review(run)
    tie = next(row["id"] for row in read_jsonl(run / "review_queue.jsonl"))
    members = split_members(run)
    first, second, third = sorted(s for s, split in members.items() if split in ("train", "hard"))[:3]
    open_gallery(page, gallery)

    card_of(page, first).locator("button[data-act=drop][data-reason=unreasonable]").click()
    assert "type your name" in page.locator("#save-status").inner_text()  # no name, no decision
    page.fill("#reviewer", "Ada Lovelace")
    card_of(page, first).locator("button[data-act=drop][data-reason=unreasonable]").click()
    card_of(page, second)
    page.keyboard.press("j")
    page.keyboard.press("2")  # drop: meaningless
    card_of(page, third).locator("button[data-act=drop][data-reason=duplicate]").click()
    show(page, "status=queue")
    page.locator(f"article.card[data-id='{tie}']").wait_for()
    page.keyboard.press("j")
    page.keyboard.press("h")  # resolve the tie: hard
    assert page.locator("#pending-count").inner_text() == "4"
    assert "resolved: hard" in page.locator(f"article.card[data-id='{tie}'] .badge.decision").inner_text()
    assert "dropped (meaningless)" in card_of(page, second).locator(".badge.decision").inner_text()

    with page.expect_download() as download:
        page.click("#download")
    saved = tmp_path / "decisions.jsonl"
    download.value.save_as(saved)
    lines = [json.loads(line) for line in saved.read_text(encoding="utf-8").splitlines()]
    assert [(d["id"], d["action"], d.get("reason") or d.get("route")) for d in lines] == [
        (first, "drop", "unreasonable"), (second, "drop", "meaningless"),
        (third, "drop", "duplicate"), (tie, "resolve", "hard")]
    assert {d["reviewer"] for d in lines} == {"Ada Lovelace"}

    result = run_cli("apply-decisions", run, saved)
    assert result.exit_code == 0, result.output
    dropped = {r.id: r for r in RunDir(run).rejects() if r.stage == "review"}
    assert sorted(dropped) == sorted([first, second, third])
    assert all(r.reason == RejectReason.dropped_by_reviewer for r in dropped.values())
    judged = RunDir(run).read_by_id("judgements", JudgementRecord)[tie]
    assert judged.route == "hard" and judged.decision.reviewer == "Ada Lovelace"
    after = split_members(run)
    assert after[tie] == "hard" and not {first, second, third} & set(after)
    assert tie in exported_ids(run) and not {first, second, third} & exported_ids(run)

    before = tree_hashes(run)
    assert run_cli("apply-decisions", run, saved).exit_code == 0
    assert tree_hashes(run) == before

    # A gallery written after applying shows the run's log; nothing is pending in a new browser.
    write_review(run)
    page.evaluate("localStorage.clear()")
    show(page, "status=dropped")
    page.reload()
    page.wait_for_selector("body[data-ready='1']")
    assert count_text(page, "sample-count") == "3 samples shown"
    assert page.locator("#pending-count").inner_text() == "0"


@pytest.fixture()
def served(run_dir: Path, tmp_path: Path) -> Iterator[tuple[Path, Any]]:
    run = copy_run(run_dir, tmp_path / "run")
    write_review(run)
    server = serve(run)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield run, server
    server.shutdown()
    server.server_close()




def test_served_gallery_saves_decisions_to_the_run(served: tuple[Path, Any], page: Any) -> None:
    run, server = served
    assert server.server_address[0] == "127.0.0.1"
    page.goto(server.url + "#status=hard")
    page.wait_for_selector("body[data-ready='1']")
    page.wait_for_function("document.getElementById('save-status').textContent.includes('served')")
    page.fill("#reviewer", "Grace")
    card = page.locator("article.card").first
    sample = card.get_attribute("data-id")
    card.locator("button[data-act=drop][data-reason=duplicate]").click()
    page.wait_for_function("document.getElementById('save-status').textContent.includes('saved to')")
    log = read_jsonl(run / "decisions.jsonl")
    assert [(d["id"], d["reason"], d["reviewer"]) for d in log] == [(sample, "duplicate", "Grace")]
    assert page.locator("#pending-count").inner_text() == "0"
    # The full-size images of the zoom come from the run's image store through the server.
    card.locator("img[data-zoom='2']").click()
    page.wait_for_function("document.getElementById('zoom-2').naturalWidth > 0")

    api = server.url.replace("/review/index.html", "/api/decisions")
    good = json.dumps(log[0]).encode()
    assert post(api, good, **{"Content-Type": "text/plain"}) == 415
    assert post(api, good, **{"Content-Type": "application/json", "Origin": "http://evil.test"}) == 403
    assert post(api, b'{"id": "x"}', **{"Content-Type": "application/json"}) == 400
    assert len(read_jsonl(run / "decisions.jsonl")) == 1
    for path in ("/config.yaml", "/cache.sqlite", "/review/../config.yaml", "/images/../manifest.json"):
        with pytest.raises(urllib.error.HTTPError) as error:
            urllib.request.urlopen(server.url.replace("/review/index.html", path), timeout=5)
        assert error.value.code == 404, path
    assert run_cli("apply-decisions", run).exit_code == 0
    assert sample not in split_members(run)


def test_unfinished_run_renders_an_empty_gallery(run_dir: Path, tmp_path: Path, page: Any) -> None:
    run = copy_run(run_dir, tmp_path / "run")
    for name in ("instructions.jsonl", "judgements.jsonl", "labels.jsonl", "review_queue.jsonl"):
        (run / name).unlink()
    shutil.rmtree(run / "splits")
    open_gallery(page, write_review(run))
    assert count_text(page, "sample-count") == "0 samples shown"
    assert "No samples" in page.locator("#cards").inner_text()


def test_out_elsewhere_keeps_links_working(run_dir: Path, tmp_path: Path) -> None:
    out = write_review(run_dir, out=tmp_path / "gallery" / "audit.html")
    assert (tmp_path / "gallery" / "thumbs").is_dir() and (tmp_path / "gallery" / "gallery.js").exists()
    data = (tmp_path / "gallery" / "data" / "index.js").read_text(encoding="utf-8")
    full = re.search(r'"([^"]+\.png)"', data)
    assert full and (out.parent / full.group(1)).resolve().exists()


def test_screenshot(gallery: Path, page: Any, tmp_path: Path) -> None:
    open_gallery(page, gallery)
    page.locator("article.card img").first.wait_for()
    shot = tmp_path / "review.png"
    page.screenshot(path=str(shot))
    with Image.open(shot) as image:
        assert image.size == (1280, 1000)
        assert len(image.convert("L").getcolors(maxcolors=1 << 16) or []) > 50  # not a blank page


def status_line(port: int, request: bytes, close_write: bool = False) -> str:
    """Send raw bytes to the server and return the status line of its answer ('' if none)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        if close_write:
            sock.shutdown(socket.SHUT_WR)
        reply = b""
        while b"\r\n" not in reply:
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
    return reply.split(b"\r\n")[0].decode("latin-1")


def raw_post(port: int, body: bytes, length: str | None, host: str | None = None) -> bytes:
    headers = [b"POST /api/decisions HTTP/1.1", b"Host: " + (host or f"127.0.0.1:{port}").encode(),
               b"Content-Type: application/json"]
    if length is not None:
        headers.append(b"Content-Length: " + length.encode())
    return b"\r\n".join(headers) + b"\r\n\r\n" + body


def a_decision(run: Path) -> bytes:
    sample = sorted(split_members(run))[0]
    return json.dumps({"id": sample, "action": "drop", "reason": "duplicate", "reviewer": "Eve",
                       "at": "2026-01-05T10:00:00Z"}).encode()


@pytest.mark.parametrize(("length", "expected"), [
    ("-1", "400"), ("abc", "400"), ("1e3", "400"), (None, "411"), (str(2 << 20), "413")])
def test_a_bad_content_length_is_refused_and_nothing_is_saved(
        served: tuple[Path, Any], capfd: pytest.CaptureFixture[str], length: str | None,
        expected: str) -> None:
    run, server = served
    port = server.server_address[1]
    body = b"" if length == str(2 << 20) else a_decision(run)  # headers alone: the cap answers
    line = status_line(port, raw_post(port, body, length), close_write=True)
    assert line.startswith(f"HTTP/1.1 {expected} "), line
    assert not (run / "decisions.jsonl").exists()
    assert "Traceback" not in capfd.readouterr().err


@pytest.mark.parametrize("body", [b'{"id": "\xff"}', b"[" * 100_000, b'{"id": "x"}'])
def test_a_malformed_body_is_400_without_a_traceback(served: tuple[Path, Any], body: bytes,
                                                      capfd: pytest.CaptureFixture[str]) -> None:
    run, server = served
    port = server.server_address[1]
    line = status_line(port, raw_post(port, body, str(len(body))))
    assert line.startswith("HTTP/1.1 400 "), line
    assert status_line(port, b"GET / / HTTP/1.1\r\n\r\n").startswith("HTTP/1.1 400")  # a bad request line
    assert "Traceback" not in capfd.readouterr().err


@pytest.mark.parametrize("path", ["/api/decisions", "/review/index.html"])
def test_a_foreign_host_is_refused_even_for_reading(served: tuple[Path, Any], path: str,
                                                     capfd: pytest.CaptureFixture[str]) -> None:
    """A DNS-rebinding page reaches 127.0.0.1 under its own name: its Host gives it away."""
    run, server = served
    port = server.server_address[1]
    for host, expected in ((f"rebind.evil.test:{port}", "403"), (f"127.0.0.1:{port + 1}", "403"),
                           (f"127.0.0.1:{port}", "200"), (f"localhost:{port}", "200")):
        request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
        line = status_line(port, request)
        assert line.startswith(f"HTTP/1.1 {expected} "), (host, line)
    evil = raw_post(port, a_decision(run), str(len(a_decision(run))), host=f"rebind.evil.test:{port}")
    assert status_line(port, evil).startswith("HTTP/1.1 403 ")
    assert not (run / "decisions.jsonl").exists()
    assert "Traceback" not in capfd.readouterr().err
