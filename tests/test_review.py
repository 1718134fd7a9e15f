"""`review.write_review`: the gallery renders in a real headless browser, shows every sample,
filters through the URL hash, raises no script error, and escapes model text.

Chromium is optional on a laptop (the browser tests skip) but required in CI (they fail).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from _builds import copy_run, read_jsonl, shared_run
from PIL import Image

from mis_data.records import RejectReason, RejectRecord
from mis_data.review import THUMB_SIDE, write_review
from mis_data.rundir import RunDir
from mis_data.splits import SPLITS

HOSTILE = '<script>alert("x")</script> & <img src=x onerror=alert(1)>'
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000",
                  "--window-size=1280,2000")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy of the shared offline run, plus two rejects, one with hostile text."""
    run = copy_run(shared_run(tmp_path_factory), tmp_path_factory.mktemp("review") / "run")
    with RunDir(run) as folder:
        folder.reject(RejectRecord(stage="instructions", id="feedface00000001",
                                   reason=RejectReason.refused, detail="I can't help with that.",
                                   sub_category="Identity Theft"))
        folder.reject(RejectRecord(stage="labels", id="feedface00000002",
                                   reason=RejectReason.label_apology, detail=HOSTILE,
                                   sub_category="Weapon-Related Violence"))
    return run


@pytest.fixture(scope="module")
def page(run_dir: Path) -> Path:
    return write_review(run_dir)


def split_sizes(run: Path) -> Counter[str]:
    return Counter({split: len(read_jsonl(run / "splits" / f"{split}.jsonl"))
                    for split in SPLITS if (run / "splits" / f"{split}.jsonl").exists()})


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None and Path("/usr/bin/chromium").exists():
        found = "/usr/bin/chromium"
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is required in CI for the review gallery tests")
        pytest.skip("chromium is not installed")
    return found


def browse(url: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """One headless Chromium run with its own profile; fails the test if the browser fails."""
    result = subprocess.run([chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args, url],
                            capture_output=True, text=True, timeout=90, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    return result


def console_messages(stderr: str) -> list[str]:
    """Lines Chromium logs for page console output; this page writes none unless it fails."""
    return [line for line in stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]


def dump_dom(page: Path, fragment: str, profile: Path) -> str:
    result = browse(page.as_uri() + fragment, profile, "--dump-dom")
    assert console_messages(result.stderr) == []
    dom = result.stdout
    assert 'data-ready="1"' in dom, "the page script did not run to its end"
    assert 'class="page-error"' not in dom, re.findall(r'class="page-error">([^<]*)', dom)
    return dom


def shown_count(dom: str, element_id: str) -> str:
    match = re.search(rf'id="{element_id}">([^<]*)<', dom)
    assert match, f"no #{element_id} in the DOM"
    return match.group(1)


def visible_cards(dom: str) -> list[str]:
    return [tag for tag in re.findall(r'<article class="card"[^>]*>', dom) if "hidden" not in tag]


def test_page_files_are_small_and_relative(run_dir: Path, page: Path) -> None:
    assert page == (run_dir / "review" / "index.html").resolve()
    html = page.read_text(encoding="utf-8")
    thumbs = sorted((page.parent / "thumbs").glob("*.jpg"))
    assert thumbs
    for thumb in thumbs[:5]:
        with Image.open(thumb) as image:
            assert image.format == "JPEG" and max(image.size) <= THUMB_SIDE
    assert 'src="thumbs/' in html and "file://" not in html
    assert "http://" not in html and "https://" not in html  # no CDN, nothing remote
    assert html.count('<article class="card"') == sum(split_sizes(run_dir).values())


def test_model_text_is_escaped(page: Path) -> None:
    html = page.read_text(encoding="utf-8")
    assert HOSTILE not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;img src=x" in html


def test_unfinished_run_renders_an_empty_gallery(run_dir: Path, tmp_path: Path) -> None:
    run = copy_run(run_dir, tmp_path / "run")
    shutil.rmtree(run / "splits")
    html = write_review(run).read_text(encoding="utf-8")
    assert "No finished samples" in html and '<article class="card"' not in html
    assert "0 samples shown" in html


def test_out_elsewhere_keeps_links_working(run_dir: Path, tmp_path: Path) -> None:
    out = write_review(run_dir, out=tmp_path / "gallery" / "audit.html")
    html = out.read_text(encoding="utf-8")
    assert (tmp_path / "gallery" / "thumbs").is_dir()
    full = re.search(r'<a href="([^"]+\.png)"', html)
    assert full and (out.parent / full.group(1)).resolve().exists()


def test_browser_shows_every_sample_without_errors(run_dir: Path, page: Path, tmp_path: Path) -> None:
    total = sum(split_sizes(run_dir).values())
    dom = dump_dom(page, "", tmp_path / "profile")
    assert shown_count(dom, "sample-count") == f"{total} samples shown"
    assert len(visible_cards(dom)) == total
    assert shown_count(dom, "reject-count") == "2 rejects shown"


@pytest.mark.parametrize("split", ["hard", "train"])
def test_hash_filters_by_split(run_dir: Path, page: Path, tmp_path: Path, split: str) -> None:
    expected = split_sizes(run_dir)[split]
    assert expected, f"the shared run should have {split} samples"
    dom = dump_dom(page, f"#split={split}&open=1", tmp_path / "profile")
    assert shown_count(dom, "sample-count") == f"{expected} sample{'' if expected == 1 else 's'} shown"
    assert {re.search(r'data-split="([^"]+)"', tag).group(1) for tag in visible_cards(dom)} == {split}
    # open=1 expands every card's votes and provenance (the toggle a reviewer ticks).
    assert dom.count('<details class="provenance" open=""') == len(re.findall(r'<article class="card"', dom))


def test_hash_filters_by_sub_category_and_reject_reason(run_dir: Path, page: Path, tmp_path: Path) -> None:
    rows = [row for split in SPLITS if (run_dir / "splits" / f"{split}.jsonl").exists()
            for row in read_jsonl(run_dir / "splits" / f"{split}.jsonl")]
    sub = sorted(row["sub_category"] for row in rows)[0]
    expected = sum(1 for row in rows if row["sub_category"] == sub)
    dom = dump_dom(page, "#tab=rejects&reason=refused&sub=" + sub.replace(" ", "%20"), tmp_path / "p")
    assert shown_count(dom, "sample-count").startswith(f"{expected} sample")
    assert shown_count(dom, "reject-count") == "1 reject shown"
    assert re.search(r'<section id="samples-tab" hidden', dom)


def test_screenshot(page: Path, tmp_path: Path) -> None:
    shot = tmp_path / "review.png"
    browse(page.as_uri(), tmp_path / "profile", f"--screenshot={shot}")
    assert shot.exists() and shot.stat().st_size > 20_000
    with Image.open(shot) as image:
        assert image.size == (1280, 2000)
        assert len(image.convert("L").getcolors(maxcolors=1 << 16) or []) > 50  # not a blank page
