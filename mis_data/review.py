"""A static HTML gallery of a finished run, for auditing samples and rejects by eye.

One self-contained page (inline CSS and script, no server, no CDN) that works when opened as a
file: every finished sample as a card with thumbnails of its two images, its instruction, label,
judge votes and provenance, and a second tab with every reject. Filters live in the URL hash
(``index.html#split=hard&sub=Identity%20Theft&open=1``, ``#tab=rejects&reason=refused``) so a view can be
bookmarked, shared, and checked by a headless browser in tests.

All text on the page is model output or user data, so every value passes through ``html.escape``;
the script only reads data attributes and writes ``textContent``, never HTML. Thumbnails (JPEG,
at most 256 px) go to ``thumbs/`` beside the page and are named by image sha256, so a rerun only
makes the ones that are missing.
"""

from __future__ import annotations

import io
import os
from collections import Counter
from dataclasses import dataclass
from html import escape
from pathlib import Path
from urllib.parse import quote

from PIL import Image

from mis_data.images.store import ImageStore
from mis_data.records import ImageRecord, ImageRef, Vote
from mis_data.rundir import RunDir, read_json_or_none, write_bytes_atomic, write_text_atomic
from mis_data.splits import GENERAL, SPLITS, Sample, read_splits

THUMB_SIDE = 256
THUMBS = "thumbs"
SPLIT_STAGE = "splits"  # rows for samples the split step excluded (leakage, quota)


@dataclass(frozen=True)
class RejectRow:
    stage: str
    id: str
    reason: str
    detail: str
    sub_category: str


@dataclass(frozen=True)
class Page:
    """What the page is rendered from, and where its relative links start."""

    title: str
    backend: str
    samples: list[Sample]
    rejects: list[RejectRow]
    images: dict[str, ImageRecord]  # sha256 -> the image record that made it (provenance)
    thumbs: dict[str, str]  # sha256 -> thumbnail href, for images that exist
    full: dict[str, str]  # sha256 -> full-size image href


def e(value: object) -> str:
    """Escape for text and for double-quoted attributes alike."""
    return escape(str(value), quote=True)


# -- reading the run -------------------------------------------------------------------------

def reject_rows(run: RunDir) -> list[RejectRow]:
    """Current rejects and split exclusions, grouped by reason, then stage, then id."""
    rows = [RejectRow(r.stage, r.id, r.reason.value, r.detail, r.sub_category or "")
            for r in run.rejects()]
    split_manifest = read_json_or_none(run.splits_dir / "manifest.json") or {}
    rows += [RejectRow(SPLIT_STAGE, x["id"], x["reason"], x.get("detail", ""), x.get("sub_category", ""))
             for x in split_manifest.get("excluded", [])]
    return sorted(rows, key=lambda row: (row.reason, row.stage, row.id))


def run_title(run: RunDir) -> tuple[str, str]:
    """The run's name and backend, from the manifest or the resolved config."""
    manifest = read_json_or_none(run.manifest_path) or {}
    if manifest.get("name"):
        return str(manifest["name"]), str(manifest.get("backend", "?"))
    config = run.config().config
    return config.name, config.backend


def make_thumbnail(source: Path, target: Path) -> bool:
    """A JPEG of at most THUMB_SIDE px a side, made once (the name is the source's hash).

    Returns False when the source cannot be read, so the card shows that instead of failing.
    """
    if target.exists():
        return True
    try:
        with Image.open(source) as image:
            image.thumbnail((THUMB_SIDE, THUMB_SIDE))
            buffer = io.BytesIO()
            image.convert("RGB").save(buffer, format="JPEG", quality=85)
    except (OSError, ValueError):
        return False
    write_bytes_atomic(target, buffer.getvalue())
    return True


def href(path: Path, start: Path) -> str:
    return quote(Path(os.path.relpath(path, start)).as_posix())


def read_page(run: RunDir, out: Path) -> Page:
    splits = read_splits(run)
    samples = [sample for split in SPLITS for sample in splits.get(split, [])]
    title, backend = run_title(run)
    store = ImageStore(run.images_dir)
    refs = {ref.sha256: ref for sample in samples for ref in (sample.image1, sample.image2)}
    thumbs, full = {}, {}
    for sha in sorted(refs):
        source = store.path_for(sha)
        thumb = out.parent / THUMBS / f"{sha}.jpg"
        if source.exists() and make_thumbnail(source, thumb):
            thumbs[sha] = href(thumb, out.parent)
            full[sha] = href(source, out.parent)
    images = {}
    for record in run.read("images", ImageRecord):
        images.setdefault(record.sha256, record)
    return Page(title=title, backend=backend, samples=samples, rejects=reject_rows(run),
                images=images, thumbs=thumbs, full=full)


# -- rendering -------------------------------------------------------------------------------

def render_options(counts: Counter[str], order: list[str], everything: str) -> str:
    options = [f'<option value="">{e(everything)} ({sum(counts.values())})</option>']
    options += [f'<option value="{e(v)}">{e(v)} ({counts[v]})</option>' for v in order if counts[v]]
    return "".join(options)


def render_sub_options(samples: list[Sample]) -> str:
    """Sub-categories grouped under their category, as the taxonomy reads."""
    counts = Counter(sample.sub_category for sample in samples)
    by_category: dict[str, set[str]] = {}
    for sample in samples:
        by_category.setdefault(sample.category, set()).add(sample.sub_category)
    parts = [f'<option value="">all sub-categories ({len(samples)})</option>']
    for category in sorted(by_category, key=lambda c: (c == GENERAL, c)):
        subs = "".join(f'<option value="{e(s)}">{e(s)} ({counts[s]})</option>'
                       for s in sorted(by_category[category]))
        parts.append(f'<optgroup label="{e(category)}">{subs}</optgroup>')
    return "".join(parts)


def render_image(page: Page, ref: ImageRef, slot: int, name: str) -> str:
    caption = f"{slot} · {name}" if name else f"image {slot}"
    if ref.sha256 not in page.thumbs:
        return (f'<figure><div class="missing">image file missing or unreadable<br>'
                f"<code>{e(ref.sha256[:16])}</code></div><figcaption>{e(caption)}</figcaption></figure>")
    return (f'<figure><a href="{e(page.full[ref.sha256])}" target="_blank">'
            f'<img src="{e(page.thumbs[ref.sha256])}" alt="{e(caption)}" loading="lazy"></a>'
            f"<figcaption>{e(caption)}</figcaption></figure>")


def flag(name: str, value: bool, alarming: bool = True) -> str:
    """One judge answer as ``name yes/no``; a "yes" that flags harm is drawn in red."""
    css = "yes" if value and alarming else "no"
    return f'<span class="flag {css}">{e(name)} <b>{"yes" if value else "no"}</b></span>'


def render_votes(votes: list[Vote], sub_category: str) -> str:
    """Each vote as a short block (not a table: cards are narrow and reasons are long)."""
    if not votes:
        return '<p class="muted">no judge votes (not a judged sample)</p>'
    blocks = "".join(
        f'<div class="vote"><div class="flags"><b>{e(v.judge)}</b> → '
        f'<span class="badge split-{e(v.route)}">{e(v.route)}</span> '
        f"{flag('text unsafe', v.text_unsafe)}{flag('images harmful', v.images_harmful)}"
        f"{flag('combination harmful', v.combination_harmful)}"
        f"{flag('meaningful', v.meaningful, alarming=False)}"
        + (f' <span class="muted">as {e(v.sub_category)}</span>'
           if v.sub_category and v.sub_category != sub_category else "")
        + f'</div><p class="reason">{e(v.reason or "(no reason given)")}</p></div>' for v in votes)
    routes = ", ".join(v.route for v in votes)
    return (f'<details class="votes"><summary>Judge votes ({len(votes)}): {e(routes)}</summary>'
            f"{blocks}</details>")


def image_provenance(page: Page, ref: ImageRef) -> str:
    record = page.images.get(ref.sha256)
    parts = [e(ref.source), f"{ref.width}×{ref.height}", f"<code>{e(ref.sha256[:12])}</code>"]
    if record is not None and record.model:
        parts.append(f"model {e(record.model)}, {record.rounds} round(s)")
    text = ", ".join(parts)
    if record is not None and record.prompt:
        text += f'<br><span class="muted">prompt: {e(record.prompt)}</span>'
    return text


def render_provenance(page: Page, sample: Sample) -> str:
    rows = [("sample id", f"<code>{e(sample.id)}</code>"),
            ("concept source", e(sample.concept_source or "—")),
            ("variant", e(sample.source)),
            ("image 1", image_provenance(page, sample.image1)),
            ("image 2", image_provenance(page, sample.image2)),
            ("moved from", e(sample.moved_from or "—"))]
    items = "".join(f"<dt>{name}</dt><dd>{value}</dd>" for name, value in rows)
    return f'<details class="provenance"><summary>Provenance</summary><dl>{items}</dl></details>'


def render_card(page: Page, sample: Sample) -> str:
    moved = (f' <span class="badge moved">moved from {e(sample.moved_from)}</span>'
             if sample.moved_from else "")
    label = (f'<details class="label" open><summary>Label ({len(sample.label)} chars)</summary>'
             f'<div class="text">{e(sample.label)}</div></details>' if sample.label
             else '<p class="muted">no label (test items are answered by the model under test)</p>')
    return (
        f'<article class="card" data-split="{e(sample.split)}" data-sub="{e(sample.sub_category)}" '
        f'id="sample-{e(sample.id)}">'
        f'<header><span class="badge split-{e(sample.split)}">{e(sample.split)}</span>{moved} '
        f'<span class="category">{e(sample.category)} › <b>{e(sample.sub_category)}</b></span></header>'
        f'<div class="images">{render_image(page, sample.image1, 1, sample.object1)}'
        f"{render_image(page, sample.image2, 2, sample.object2)}</div>"
        f'<p class="question">{e(sample.question)}</p>{label}'
        f"{render_votes(sample.votes, sample.sub_category)}{render_provenance(page, sample)}</article>")


def render_rejects(rows: list[RejectRow]) -> str:
    if not rows:
        return '<p class="muted">No rejects: every record passed its filters.</p>'
    body = "".join(
        f'<tr class="reject" data-reason="{e(r.reason)}" data-stage="{e(r.stage)}">'
        f'<td><span class="reason-tag">{e(r.reason)}</span></td><td>{e(r.stage)}</td>'
        f"<td><code>{e(r.id)}</code></td><td>{e(r.sub_category or '—')}</td>"
        f'<td class="detail">{e(r.detail)}</td></tr>' for r in rows)
    return ('<table class="rejects"><thead><tr><th>reason</th><th>stage</th><th>id</th>'
            f"<th>sub-category</th><th>detail</th></tr></thead><tbody>{body}</tbody></table>")


def reason_links(rows: list[RejectRow]) -> str:
    counts = Counter(row.reason for row in rows)
    return " ".join(f'<a class="chip" href="#tab=rejects&amp;reason={e(quote(reason))}">{e(reason)} '
                    f"<b>{count}</b></a>" for reason, count in sorted(counts.items()))


def counted(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many} shown"


def render_page(page: Page) -> str:
    samples, rejects = page.samples, page.rejects
    split_counts = Counter(sample.split for sample in samples)
    cards = "".join(render_card(page, sample) for sample in samples) or (
        '<p class="muted">No finished samples: the splits have not been written yet.</p>')
    reasons = sorted({row.reason for row in rejects})
    stages = sorted({row.stage for row in rejects})
    backend = page.backend + (" (templates and rules, no language model)" if page.backend == "offline"
                              else "")
    return PAGE.format(
        title=e(page.title), backend=e(backend), n_samples=len(samples), n_rejects=len(rejects),
        split_options=render_options(split_counts, list(SPLITS), "all splits"),
        sub_options=render_sub_options(samples),
        reason_options=render_options(Counter(r.reason for r in rejects), reasons, "all reasons"),
        stage_options=render_options(Counter(r.stage for r in rejects), stages, "all stages"),
        sample_count=counted(len(samples), "sample", "samples"),
        reject_count=counted(len(rejects), "reject", "rejects"),
        reason_links=reason_links(rejects), cards=cards, rejects=render_rejects(rejects),
        style=STYLE, script=SCRIPT)


def write_review(run_dir: Path, out: Path | None = None) -> Path:
    """Write the gallery (default ``run_dir/review/index.html``) and its thumbnails; return its path."""
    run = RunDir(Path(run_dir))
    run.config()  # not a run folder: one clear error now
    out = Path(out) if out is not None else run.path / "review" / "index.html"
    out = out.resolve()
    write_text_atomic(out, render_page(read_page(run, out)))
    return out


# -- the page --------------------------------------------------------------------------------

STYLE = """
[hidden] { display: none !important; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0;
       background: #f4f5f7; color: #1d2330; }
body > header { background: #1d2330; color: #fff; padding: 14px 24px 0; }
h1 { font-size: 20px; margin: 0 0 4px; }
.meta { margin: 0 0 10px; color: #c5cad6; }
.tabs button { font: inherit; border: 0; background: none; color: #c5cad6; padding: 8px 14px;
               cursor: pointer; border-bottom: 3px solid transparent; }
.tabs button[aria-selected="true"] { color: #fff; border-bottom-color: #f28e2b; font-weight: 600; }
main { padding: 16px 24px; }
.controls { display: flex; flex-wrap: wrap; gap: 16px; align-items: center; margin-bottom: 14px; }
.controls select { font: inherit; padding: 3px 6px; max-width: 340px; }
.count { font-weight: 600; margin: 0; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(340px, 1fr)); gap: 14px; }
.card { background: #fff; border: 1px solid #dde1e8; border-radius: 8px; padding: 12px 14px;
        display: flex; flex-direction: column; gap: 8px; min-width: 0; }
.card header { display: flex; flex-wrap: wrap; gap: 6px; align-items: center; }
.category { color: #4a5263; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px;
         font-weight: 600; color: #fff; background: #6b7280; }
.split-train { background: #4e79a7; } .split-val { background: #3f8f8a; }
.split-easy { background: #3f8a3a; } .split-hard { background: #c8414b; }
.split-real { background: #8a5a82; } .split-discard { background: #6b7280; }
.moved { background: #b7791f; }
.images { display: grid; grid-template-columns: 1fr 1fr; gap: 8px; }
figure { margin: 0; }
figure img, .missing { width: 100%; aspect-ratio: 1; object-fit: contain; background: #eef0f3;
                       border-radius: 4px; display: block; }
.missing { display: flex; flex-direction: column; align-items: center; justify-content: center;
           color: #c8414b; font-size: 12px; }
figcaption { font-size: 12px; color: #4a5263; margin-top: 3px; overflow-wrap: anywhere; }
.question { font-weight: 600; margin: 0; overflow-wrap: anywhere; }
details { border-top: 1px solid #eceef2; padding-top: 4px; }
summary { cursor: pointer; color: #4a5263; font-size: 13px; }
.label .text { white-space: pre-wrap; font-size: 13px; margin-top: 4px; overflow-wrap: anywhere; }
table { border-collapse: collapse; width: 100%; font-size: 12px; margin-top: 4px; }
th, td { text-align: left; padding: 3px 6px; border-bottom: 1px solid #eceef2; vertical-align: top; }
th { color: #4a5263; font-weight: 600; }
td.detail { overflow-wrap: anywhere; }
.vote { margin-top: 4px; font-size: 12px; }
.vote .flags { display: flex; flex-wrap: wrap; gap: 4px 8px; align-items: center; }
.flag { color: #4a5263; } .flag.yes b { color: #c8414b; } .flag.no b { color: #4a5263; }
.vote .reason { margin: 2px 0 0; overflow-wrap: anywhere; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 2px 10px; font-size: 12px; margin: 4px 0; }
dt { color: #4a5263; } dd { margin: 0; overflow-wrap: anywhere; }
code { font: 12px ui-monospace, SFMono-Regular, Menlo, monospace; }
.muted { color: #6b7280; font-size: 12px; margin: 0; }
table.rejects { background: #fff; font-size: 13px; border: 1px solid #dde1e8; }
table.rejects th { background: #f0f2f5; }
.reason-tag { font-family: ui-monospace, monospace; color: #8a2c33; }
.chip { display: inline-block; padding: 2px 10px; margin: 0 4px 4px 0; border-radius: 12px;
        background: #fff; border: 1px solid #dde1e8; color: #1d2330; text-decoration: none; }
#page-errors { background: #fde8e8; color: #8a2c33; padding: 8px 24px; }
"""

# Kept in ES5 with no libraries so it runs from a file:// URL in any browser.
SCRIPT = """
(function () {
  "use strict";
  var FILTERS = {split: "split-filter", sub: "sub-filter", reason: "reason-filter", stage: "stage-filter"};
  function params() { return new URLSearchParams(location.hash.replace(/^#/, "")); }
  function setParam(key, value) {
    var p = params();
    if (value) { p.set(key, value); } else { p.delete(key); }
    location.hash = p.toString();
  }
  function choose(id, value) {
    var select = document.getElementById(id);
    var known = Array.prototype.some.call(select.options, function (o) { return o.value === value; });
    select.value = known ? value : "";
    return select.value;
  }
  function filter(selector, wanted) {
    var shown = 0;
    Array.prototype.forEach.call(document.querySelectorAll(selector), function (el) {
      var show = Object.keys(wanted).every(function (key) {
        return !wanted[key] || el.getAttribute("data-" + key) === wanted[key];
      });
      el.hidden = !show;
      if (show) { shown += 1; }
    });
    return shown;
  }
  var expanded = null;
  function expand(open) {
    if (open === expanded) { return; }  // keep the reader's own clicks until the toggle changes
    expanded = open;
    document.getElementById("open-toggle").checked = open;
    Array.prototype.forEach.call(document.querySelectorAll("details.votes, details.provenance"),
      function (details) { details.open = open; });
  }
  function counted(n, one, many) { return n + " " + (n === 1 ? one : many) + " shown"; }
  function apply() {
    var p = params();
    var tab = p.get("tab") === "rejects" ? "rejects" : "samples";
    Array.prototype.forEach.call(document.querySelectorAll("[data-tab]"), function (button) {
      var active = button.getAttribute("data-tab") === tab;
      button.setAttribute("aria-selected", active ? "true" : "false");
      document.getElementById(button.getAttribute("data-tab") + "-tab").hidden = !active;
    });
    expand(p.get("open") === "1");
    var samples = filter(".card", {split: choose("split-filter", p.get("split") || ""),
                                   sub: choose("sub-filter", p.get("sub") || "")});
    document.getElementById("sample-count").textContent = counted(samples, "sample", "samples");
    var rejects = filter("tr.reject", {reason: choose("reason-filter", p.get("reason") || ""),
                                       stage: choose("stage-filter", p.get("stage") || "")});
    document.getElementById("reject-count").textContent = counted(rejects, "reject", "rejects");
  }
  Object.keys(FILTERS).forEach(function (key) {
    document.getElementById(FILTERS[key]).addEventListener("change", function (event) {
      setParam(key, event.target.value);
    });
  });
  document.getElementById("open-toggle").addEventListener("change", function (event) {
    setParam("open", event.target.checked ? "1" : "");
  });
  Array.prototype.forEach.call(document.querySelectorAll("[data-tab]"), function (button) {
    button.addEventListener("click", function () {
      var tab = button.getAttribute("data-tab");
      setParam("tab", tab === "samples" ? "" : tab);
    });
  });
  window.addEventListener("hashchange", apply);
  apply();
  document.body.setAttribute("data-ready", "1");
})();
"""

# Installed first, so a script error or an image that fails to load shows on the page (and in
# a headless browser's DOM dump) instead of only in a console nobody reads.
ERROR_TRAP = """
window.addEventListener("error", function (event) {
  var box = document.getElementById("page-errors");
  var item = document.createElement("li");
  item.className = "page-error";
  item.textContent = event.message || ("failed to load " + (event.target.src || event.target.href || "?"));
  box.querySelector("ul").appendChild(item);
  box.hidden = false;
}, true);
"""

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}: mis-data review</title>
<style>{style}</style>
</head>
<body data-ready="0">
<div id="page-errors" hidden><strong>Errors on this page</strong><ul></ul></div>
<script>""" + ERROR_TRAP.replace("{", "{{").replace("}", "}}") + """</script>
<header>
<h1>{title}</h1>
<p class="meta">backend: {backend} &middot; {n_samples} finished samples &middot; {n_rejects} rejects</p>
<nav class="tabs" role="tablist">
<button type="button" role="tab" data-tab="samples" aria-selected="true">Samples ({n_samples})</button>
<button type="button" role="tab" data-tab="rejects" aria-selected="false">Rejects ({n_rejects})</button>
</nav>
</header>
<main>
<section id="samples-tab">
<div class="controls">
<label>Split <select id="split-filter">{split_options}</select></label>
<label>Sub-category <select id="sub-filter">{sub_options}</select></label>
<label><input type="checkbox" id="open-toggle"> expand votes and provenance</label>
<p class="count" id="sample-count">{sample_count}</p>
</div>
<div class="cards">{cards}</div>
</section>
<section id="rejects-tab" hidden>
<div class="controls">
<label>Reason <select id="reason-filter">{reason_options}</select></label>
<label>Stage <select id="stage-filter">{stage_options}</select></label>
<p class="count" id="reject-count">{reject_count}</p>
</div>
<p>{reason_links}</p>
{rejects}
</section>
</main>
<script>{script}</script>
</body>
</html>
"""
