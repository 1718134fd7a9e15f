/* The mis-data review gallery.
 *
 * Data arrives as scripts (data/index.js calls MIS_REVIEW.index, data/details-NNN.js call
 * MIS_REVIEW.details) because a page opened from a file may load scripts but not fetch files.
 * Only one page of cards is in the DOM at a time, so a run of 10,000 samples opens as fast as a
 * small one. Every value is written with textContent or setAttribute: model text never becomes
 * markup. Filters, the page and the open tab live in the URL hash, so a view can be bookmarked.
 *
 * Decisions (keep, drop, move, resolve) are complete records; the latest per sample wins, as in
 * mis_data/decisions.py. They are kept in localStorage and downloaded as decisions.jsonl, or,
 * when the page is served by `mis-data review --serve`, posted to it at once.
 */
(function () {
  "use strict";

  var PAGE_SIZE = 48;
  var REJECT_PAGE = 100;
  var STATUSES = ["train", "val", "easy", "hard", "real", "twins", "queue", "excluded", "dropped", "rejected", "pending"];
  var STATUS_NAMES = {queue: "review queue (ties)", excluded: "judged, not in a split",
                      dropped: "dropped by a reviewer", rejected: "rejected by a stage",
                      pending: "not finished"};
  var DROP_REASONS = ["unreasonable", "meaningless", "duplicate"];
  var ROUTES = ["train", "easy", "hard", "discard"];
  var KEYS = [["j / ↓", "next card"], ["k / ↑", "previous card"], ["a", "keep"],
              ["1 / 2 / 3", "drop: unreasonable / meaningless / duplicate"],
              ["shift + 1 / 2 / 3", "drop the whole pair"], ["m", "move to another sub-category"],
              ["t / e / h / x", "resolve a tie: train / easy / hard / discard"],
              ["z", "zoom both images side by side"], ["o", "open or close the details"],
              ["] / [", "next / previous page"], ["/", "search"], ["?", "these keys"],
              ["Esc", "close"]];

  var data = null;           // the index: rows, images, sub-categories, rejects, decision log
  var details = {};          // chunk number -> list of details, in row order
  var waiting = {};          // chunk number -> callbacks waiting for it
  var rowsById = {};
  var samplesOfPair = {};    // pair id -> base sample ids
  var local = [];            // decisions made in this browser and not yet saved by a server
  var saved = [];            // the log as the page or the server knows it
  var latest = {};           // base sample id -> winning decision
  var served = false;
  var shown = [];            // rows passing the filters, in order
  var current = -1;          // index of the current card on the page
  var storageKey = "";

  // -- small helpers ----------------------------------------------------------------------
  function $(id) { return document.getElementById(id); }
  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      var value = attrs[key];
      if (value === null || value === undefined || value === false) { return; }
      if (key === "text") { node.textContent = value; } else { node.setAttribute(key, value === true ? "" : value); }
    });
    (children || []).forEach(function (child) {
      if (child !== null && child !== undefined) {
        node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
      }
    });
    return node;
  }
  function params() { return new URLSearchParams(location.hash.replace(/^#/, "")); }
  function setParams(changes, keepPage) {
    var p = params();
    Object.keys(changes).forEach(function (key) {
      if (changes[key]) { p.set(key, changes[key]); } else { p.delete(key); }
    });
    if (!keepPage) { p.delete("page"); }
    location.hash = p.toString();
  }
  function counted(n, one, many) { return n + " " + (n === 1 ? one : many) + " shown"; }
  function baseOf(row) { return row.d || row.i; }
  function pairOf(sample) { return sample.replace(/-\d+$/, ""); }
  function subName(row) { return data.subs[row.c]; }
  function option(value, label) { return el("option", {value: value, text: label}); }

  // -- data arriving ----------------------------------------------------------------------
  function receiveIndex(index) { data = index; }
  function receiveDetails(number, list) {
    details[number] = list;
    (waiting[number] || []).forEach(function (callback) { callback(); });
    delete waiting[number];
  }
  function detailsOf(position, callback) {
    var number = Math.floor(position / data.chunk);
    if (details[number]) { callback(details[number][position % data.chunk]); return; }
    var first = !waiting[number];
    (waiting[number] = waiting[number] || []).push(function () {
      callback(details[number][position % data.chunk]);
    });
    if (first) {
      var name = "data/details-" + String(number).padStart(3, "0") + ".js";
      document.body.appendChild(el("script", {src: name}));
    }
  }
  function loadAllDetails(progress, done) {
    var missing = [];
    for (var n = 0; n < data.chunks; n += 1) { if (!details[n]) { missing.push(n); } }
    if (!missing.length) { done(); return; }
    var left = missing.length;
    missing.forEach(function (number) {
      detailsOf(number * data.chunk, function () {
        left -= 1;
        progress(missing.length - left, missing.length);
        if (!left) { done(); }
      });
    });
  }

  // -- decisions --------------------------------------------------------------------------
  function reviewer() { return $("reviewer").value.replace(/\s+/g, " ").trim(); }
  function recompute() {
    var all = saved.concat(local).map(function (d, order) { return [Date.parse(d.at), order, d]; });
    all.sort(function (x, y) { return x[0] - y[0] || x[1] - y[1]; });
    latest = {};
    all.forEach(function (entry) {
      var d = entry[2];
      var targets = d.scope === "pair" ? (samplesOfPair[d.id] || []) : [d.id];
      targets.forEach(function (sample) { latest[sample] = d; });
    });
    $("pending-count").textContent = String(local.length);
  }
  function remember() {
    try { localStorage.setItem(storageKey, JSON.stringify(local)); } catch (error) { /* private mode */ }
  }
  function setStatus(text, isError) {
    var status = $("save-status");
    status.textContent = text;
    status.className = "save-status" + (isError ? " error" : "");
  }
  function post(decision) {
    return fetch("/api/decisions", {method: "POST", headers: {"Content-Type": "application/json"},
                                    body: JSON.stringify(decision)})
      .then(function (response) {
        if (!response.ok) { return response.text().then(function (t) { throw new Error(t); }); }
      });
  }
  function decide(row, fields) {
    var name = reviewer();
    if (!name) {
      setStatus("type your name under Reviewer first", true);
      $("reviewer").focus();
      return;
    }
    var decision = {id: fields.scope === "pair" ? pairOf(baseOf(row)) : baseOf(row),
                    scope: fields.scope || "sample", action: fields.action, reviewer: name,
                    at: new Date().toISOString()};
    ["reason", "sub_category", "route"].forEach(function (key) {
      if (fields[key]) { decision[key] = fields[key]; }
    });
    if (served) {
      saved.push(decision);
      post(decision).then(function () { setStatus("saved to the run folder"); }, function (error) {
        saved.splice(saved.indexOf(decision), 1);
        local.push(decision);
        remember();
        recompute();
        redrawDecisions();
        setStatus("not saved (" + error.message + "); kept here, download it", true);
      });
    } else {
      local.push(decision);
      remember();
      setStatus("kept in this browser; download when done");
    }
    recompute();
    redrawDecisions();
  }
  function download() {
    var text = local.map(function (d) { return JSON.stringify(d) + "\n"; }).join("");
    var link = el("a", {href: URL.createObjectURL(new Blob([text], {type: "application/x-ndjson"})),
                        download: "decisions.jsonl"});
    document.body.appendChild(link);
    link.click();
    link.remove();
  }
  function describe(d) {
    var what = {keep: "kept", drop: "dropped (" + d.reason + ")", move: "moved to " + d.sub_category,
                resolve: "resolved: " + d.route}[d.action];
    return what + (d.scope === "pair" ? " with pair" : "") + " · " + d.reviewer;
  }

  // -- filtering --------------------------------------------------------------------------
  function wanted() {
    var p = params();
    var flags = (p.get("flags") || "").split(",").filter(Boolean);
    return {status: p.get("status") || "", sub: p.get("sub") || "", reason: p.get("reason") || "",
            q: (p.get("q") || "").toLowerCase(), flags: flags,
            page: Math.max(1, parseInt(p.get("page") || "1", 10) || 1)};
  }
  function matches(row, position, want, withText) {
    if (want.status && row.s !== want.status) { return false; }
    if (want.sub && subName(row) !== want.sub) { return false; }
    if (want.reason && row.r !== want.reason) { return false; }
    for (var i = 0; i < want.flags.length; i += 1) {
      var flag = want.flags[i];
      if (flag === "undecided") { if (latest[baseOf(row)]) { return false; } }
      else if (!((row.f || 0) & data.flags[flag])) { return false; }
    }
    if (!want.q) { return true; }
    if (row.q.toLowerCase().indexOf(want.q) >= 0 || row.i.indexOf(want.q) === 0) { return true; }
    if (!withText) { return false; }
    var more = details[Math.floor(position / data.chunk)][position % data.chunk];
    var text = [(more.l || ""), (more.h || []).join(" ")].join(" ").toLowerCase();
    return text.indexOf(want.q) >= 0;
  }
  function filterRows(want, withText) {
    var result = [];
    data.rows.forEach(function (row, position) {
      if (matches(row, position, want, withText)) { result.push(position); }
    });
    return result;
  }

  // -- cards ------------------------------------------------------------------------------
  // Images 1 and 2 are row.a and row.b; a sample with more images lists the rest in row.k.
  function imageIndex(row, slot) {
    return slot === 1 ? row.a : slot === 2 ? row.b : (row.k || [])[slot - 3];
  }
  function slotsOf(row) {
    var slots = [1, 2];
    (row.k || []).forEach(function (_, offset) { slots.push(offset + 3); });
    return slots;
  }
  function figure(row, slot) {
    var index = imageIndex(row, slot);
    var image = index >= 0 ? data.images[index] : null;
    var object = row.o ? row.o[slot - 1] : "";
    var caption = object ? slot + " · " + object : "image " + slot;
    if (!image || !image[0]) {
      return el("figure", {}, [el("div", {"class": "missing", text: "image file missing or unreadable"}),
                               el("figcaption", {text: caption})]);
    }
    return el("figure", {}, [el("img", {src: image[0], alt: caption, loading: "lazy", "data-zoom": slot}),
                             el("figcaption", {text: caption})]);
  }
  function decisionControls(row) {
    var box = el("div", {"class": "decide"});
    var mine = latest[baseOf(row)];
    function button(label, fields, key) {
      var chosen = mine && mine.action === fields.action && (mine.reason || "") === (fields.reason || "") &&
        (mine.route || "") === (fields.route || "");
      var b = el("button", {type: "button", "data-act": fields.action, "data-reason": fields.reason || null,
                            "data-route": fields.route || null, title: key ? "key " + key : null,
                            "class": chosen ? "chosen" : null, text: label});
      b.addEventListener("click", function () {
        var whole = box.querySelector(".whole-pair input");
        if (fields.action === "drop" && whole && whole.checked) {
          fields = Object.assign({}, fields, {scope: "pair"});
        }
        decide(row, fields);
      });
      return b;
    }
    if (row.s === "queue") {
      box.appendChild(el("span", {"class": "muted", text: "resolve:"}));
      ROUTES.forEach(function (route) {
        box.appendChild(button(route, {action: "resolve", route: route}, route === "discard" ? "x" : route[0]));
      });
    } else {
      box.appendChild(button("keep", {action: "keep"}, "a"));
      box.appendChild(el("span", {"class": "muted", text: "drop:"}));
      DROP_REASONS.forEach(function (reason, i) {
        box.appendChild(button(reason, {action: "drop", reason: reason}, String(i + 1)));
      });
      if (row.t) {  // a twin follows its source's route and sub-category: keep or drop only
        box.appendChild(el("span", {"class": "muted twin-note", text: "twin of " + row.t + ": move its source"}));
        return box;
      }
      var pair = el("label", {"class": "whole-pair", title: "drop every question of this pair"},
                    [el("input", {type: "checkbox"}), " whole pair"]);
      box.appendChild(pair);
      var move = el("select", {"class": "move", "aria-label": "move to sub-category"});
      move.appendChild(option("", "move to…"));
      data.categories.forEach(function (group) {
        var optgroup = el("optgroup", {label: group[0]});
        group[1].forEach(function (sub) {
          if (sub !== subName(row)) { optgroup.appendChild(option(sub, sub)); }
        });
        move.appendChild(optgroup);
      });
      move.addEventListener("change", function () {
        if (move.value) { decide(row, {action: "move", sub_category: move.value}); }
      });
      box.appendChild(move);
    }
    return box;
  }
  function header(row) {
    var mine = latest[baseOf(row)];
    var name = subName(row);
    var parts = [el("span", {"class": "badge status-" + row.s, text: row.s === "queue" ? "review queue" : row.s})];
    if (row.n) { parts.push(el("span", {"class": "badge number", title: "number in export/mis", text: row.n})); }
    if (row.r) { parts.push(el("span", {"class": "reason-tag", text: row.r})); }
    if (row.m) { parts.push(el("span", {"class": "badge moved", text: "moved from " + row.m})); }
    Object.keys(data.flags).forEach(function (flag) {
      if ((row.f || 0) & data.flags[flag] && flag !== "moved") {
        parts.push(el("span", {"class": "badge flag", text: flag === "disagree" ? "judges disagree" : flag}));
      }
    });
    var category = el("span", {"class": "category"}, [
      (data.categories.find(function (g) { return g[1].indexOf(name) >= 0; }) || ["?"])[0] + " › ",
      el("a", {href: "#sub=" + encodeURIComponent(name), text: name})]);
    parts.push(category);
    if (mine) {
      var drops = mine.action === "drop" || mine.route === "discard";
      parts.push(el("span", {"class": "badge decision" + (drops ? " drop" : ""), text: describe(mine)}));
    }
    return el("header", {}, parts);
  }
  function votesBlock(votes) {
    if (!votes.length) { return el("p", {"class": "muted", text: "no judge votes"}); }
    var block = el("details", {"class": "votes"}, [el("summary", {
      text: "Judge votes (" + votes.length + "): " + votes.map(function (v) { return v[1]; }).join(", ")})]);
    votes.forEach(function (v) {
      function flag(name, value) { return el("span", {}, [name + " ", el("b", {"class": value ? "yes" : null, text: value ? "yes" : "no"})]); }
      block.appendChild(el("div", {"class": "vote"}, [
        el("div", {"class": "flags"}, [el("b", {text: v[0]}), " → " + v[1], flag("text unsafe", v[2]),
          flag("image 1 harmful", v[3]), flag("image 2 harmful", v[4])].concat((v[10] || []).map(function (value, offset) {
            return flag("image " + (offset + 3) + " harmful", value); })).concat([flag("combination harmful", v[5]),
          flag("meaningful", v[6]), el("span", {"class": "muted", text: "as " + v[7] + (v[8] && v[8] !== v[7] ? " (text: " + v[8] + ")" : "")})])),
        el("p", {"class": "reason", text: v[9] || "(no reason given)"})]));
    });
    return block;
  }
  function fillDetails(card, row, more, open) {
    var box = card.querySelector(".more");
    box.textContent = "";
    if (more.h) {
      var history = el("ol", {"class": "history"}, [
        el("li", {}, [el("b", {text: "harmful draft: "}), more.h[0], el("div", {"class": "muted", text: more.h[1]})]),
        el("li", {}, [el("b", {text: "objects replaced: "}), more.h[2], el("div", {"class": "muted", text: more.h[3]})]),
        el("li", {}, [el("b", {text: "detoxified (ships): "}), more.h[4], el("div", {"class": "muted", text: more.h[5]})])]);
      box.appendChild(el("details", {"class": "history", open: open}, [el("summary", {text: "Question history"}), history]));
    }
    if (more.l) {
      box.appendChild(el("details", {"class": "label", open: true}, [
        el("summary", {text: "Label (" + more.l.length + " chars)"}), el("div", {"class": "text", text: more.l})]));
    }
    box.appendChild(votesBlock(more.v));
    if (open) { box.lastChild.open = true; }
    var facts = [["sample id", row.i], ["concept source", more.src[0]]];
    slotsOf(row).forEach(function (slot) {
      facts.push(["image " + slot, (more.src[slot] || "") + (more.img[slot - 1] ? "; " + more.img[slot - 1] : "")]);
    });
    more.dd.forEach(function (line) { facts.push(["near-duplicate", line]); });
    more.x.forEach(function (line) { facts.push(["reject", line]); });
    if (more.ex) { facts.push(["split", more.ex]); }
    var list = el("dl");
    facts.forEach(function (fact) { list.appendChild(el("dt", {text: fact[0]})); list.appendChild(el("dd", {text: fact[1]})); });
    box.appendChild(el("details", {"class": "provenance", open: open}, [el("summary", {text: "Provenance and flags"}), list]));
  }
  function card(position, open) {
    var row = data.rows[position];
    var mine = latest[baseOf(row)];
    var node = el("article", {"class": "card" + (mine && (mine.action === "drop" || mine.route === "discard") ? " decided-drop" : ""),
                              "data-id": row.i, "data-status": row.s, "data-sub": subName(row),
                              "data-position": position, tabindex: "-1"}, [
      header(row),
      el("div", {"class": "images"}, slotsOf(row).map(function (slot) { return figure(row, slot); })),
      el("p", {"class": "question", text: row.q}),
      decisionControls(row),
      el("div", {"class": "more"}, [el("p", {"class": "muted", text: "loading details…"})])]);
    node.addEventListener("click", function (event) {
      var zoom = event.target.getAttribute && event.target.getAttribute("data-zoom");
      setCurrent(Array.prototype.indexOf.call($("cards").children, node), false);
      if (zoom) { openZoom(row); }
    });
    detailsOf(position, function (more) { fillDetails(node, row, more, open); });
    return node;
  }
  function redrawDecisions() {
    var cards = $("cards").children;
    for (var i = 0; i < cards.length; i += 1) {
      var position = parseInt(cards[i].getAttribute("data-position"), 10);
      var fresh = card(position, $("open-toggle").checked);
      if (i === current) { fresh.classList.add("current"); }
      $("cards").replaceChild(fresh, cards[i]);
    }
  }

  // -- the samples tab --------------------------------------------------------------------
  function pager(box, page, pages, onPage) {
    box.textContent = "";
    if (pages <= 1) { return; }
    var prev = el("button", {type: "button", "data-page": "prev", disabled: page <= 1, text: "« previous"});
    var next = el("button", {type: "button", "data-page": "next", disabled: page >= pages, text: "next »"});
    prev.addEventListener("click", function () { onPage(page - 1); });
    next.addEventListener("click", function () { onPage(page + 1); });
    box.appendChild(prev);
    box.appendChild(el("span", {text: "page " + page + " of " + pages}));
    box.appendChild(next);
  }
  function renderSamples() {
    var want = wanted();
    $("search").value = want.q;
    choose("status-filter", want.status);
    choose("sub-filter", want.sub);
    choose("reason-filter", want.reason);
    Array.prototype.forEach.call(document.querySelectorAll("[data-flag]"), function (box) {
      box.checked = want.flags.indexOf(box.getAttribute("data-flag")) >= 0;
    });
    var complete = !want.q || Object.keys(details).length === data.chunks;
    shown = filterRows(want, complete);
    if (!complete) {
      $("search-status").textContent = "questions matched; searching labels…";
      loadAllDetails(function (done, total) {
        $("search-status").textContent = "searching labels… " + done + "/" + total;
      }, function () { $("search-status").textContent = ""; renderSamples(); });
    } else {
      $("search-status").textContent = "";
    }
    var pages = Math.max(1, Math.ceil(shown.length / PAGE_SIZE));
    var page = Math.min(want.page, pages);
    $("sample-count").textContent = counted(shown.length, "sample", "samples");
    var onPage = function (n) { setParams({page: n > 1 ? String(n) : ""}, true); };
    pager($("pager-top"), page, pages, onPage);
    pager($("pager-bottom"), page, pages, onPage);
    var cards = $("cards");
    cards.textContent = "";
    var open = $("open-toggle").checked;
    shown.slice((page - 1) * PAGE_SIZE, page * PAGE_SIZE).forEach(function (position) {
      cards.appendChild(card(position, open));
    });
    if (!shown.length) {
      cards.appendChild(el("p", {"class": "muted", text: data.rows.length ?
        "No sample matches these filters." : "No samples: the build has not written any questions yet."}));
    }
    current = -1;
  }
  function choose(id, value) {
    var select = $(id);
    var known = Array.prototype.some.call(select.options, function (o) { return o.value === value; });
    select.value = known ? value : "";
  }
  function setCurrent(index, scroll) {
    var cards = $("cards").querySelectorAll(".card");
    if (!cards.length) { return; }
    index = Math.max(0, Math.min(cards.length - 1, index));
    if (current >= 0 && cards[current]) { cards[current].classList.remove("current"); }
    current = index;
    cards[current].classList.add("current");
    if (scroll) { cards[current].scrollIntoView({block: "nearest"}); }
  }

  // -- zoom -------------------------------------------------------------------------------
  function openZoom(row) {
    $("zoom-question").textContent = row.q;
    var shown = slotsOf(row);
    [1, 2, 3, 4].forEach(function (slot) {
      $("zoom-" + slot).parentNode.hidden = shown.indexOf(slot) < 0;
      if (shown.indexOf(slot) < 0) { return; }
      var index = imageIndex(row, slot);
      var image = index >= 0 ? data.images[index] : null;
      var img = $("zoom-" + slot);
      if (image && image[1]) { img.src = image[1]; } else { img.removeAttribute("src"); }
      $("zoom-caption-" + slot).textContent = (row.o ? row.o[slot - 1] + " · " : "") +
        (image ? image[2] + "×" + image[3] + " · " + image[4] + " · " + image[5] : "missing");
    });
    $("zoom").hidden = false;
  }

  // -- the other tabs ---------------------------------------------------------------------
  function renderSubs() {
    var table = $("subs-table");
    if (table.childNodes.length) { return; }
    var counts = {};
    data.rows.forEach(function (row) {
      var key = subName(row);
      counts[key] = counts[key] || {};
      counts[key][row.s] = (counts[key][row.s] || 0) + 1;
    });
    var statuses = STATUSES.filter(function (s) { return data.counts[s]; });
    table.appendChild(el("tr", {}, [el("th", {text: "category / sub-category"})].concat(
      statuses.map(function (s) { return el("th", {"class": "n", text: s}); }))));
    data.categories.forEach(function (group) {
      table.appendChild(el("tr", {"class": "category"}, [el("td", {colspan: statuses.length + 1, text: group[0]})]));
      group[1].forEach(function (sub) {
        var cells = [el("td", {}, [el("a", {href: "#sub=" + encodeURIComponent(sub), text: sub})])];
        statuses.forEach(function (status) {
          var n = (counts[sub] || {})[status] || 0;
          cells.push(el("td", {"class": "n"}, [n ? el("a", {href: "#status=" + status + "&sub=" + encodeURIComponent(sub),
                                                          text: String(n)}) : "0"]));
        });
        table.appendChild(el("tr", {"data-sub": sub}, cells));
      });
    });
  }
  function renderRejects() {
    var p = params();
    var reason = p.get("rreason") || p.get("reason") || "";
    var stage = p.get("stage") || "";
    choose("reject-reason-filter", reason);
    choose("reject-stage-filter", stage);
    var rows = data.rejects.filter(function (r) {
      return (!$("reject-reason-filter").value || r[0] === $("reject-reason-filter").value) &&
             (!$("reject-stage-filter").value || r[1] === $("reject-stage-filter").value);
    });
    $("reject-count").textContent = counted(rows.length, "reject", "rejects");
    var pages = Math.max(1, Math.ceil(rows.length / REJECT_PAGE));
    var page = Math.min(Math.max(1, parseInt(p.get("rpage") || "1", 10) || 1), pages);
    pager($("reject-pager"), page, pages, function (n) { setParams({rpage: String(n)}, true); });
    var body = $("reject-rows");
    body.textContent = "";
    rows.slice((page - 1) * REJECT_PAGE, page * REJECT_PAGE).forEach(function (r) {
      body.appendChild(el("tr", {"class": "reject", "data-reason": r[0], "data-stage": r[1]}, [
        el("td", {}, [el("span", {"class": "reason-tag", text: r[0]})]), el("td", {text: r[1]}),
        el("td", {}, [el("code", {text: r[2]})]), el("td", {text: r[3] || "—"}),
        el("td", {"class": "detail", text: r[4]})]));
    });
    if (!data.rejects.length) {
      body.appendChild(el("tr", {}, [el("td", {colspan: 5, "class": "muted", text: "No rejects: every record passed its filters."})]));
    }
  }
  function render() {
    var p = params();
    var tab = ["rejects", "subs"].indexOf(p.get("tab")) >= 0 ? p.get("tab") : "samples";
    Array.prototype.forEach.call(document.querySelectorAll("[data-tab]"), function (button) {
      var active = button.getAttribute("data-tab") === tab;
      button.setAttribute("aria-selected", active ? "true" : "false");
      $(button.getAttribute("data-tab") + "-tab").hidden = !active;
    });
    renderSamples();
    renderRejects();
    if (tab === "subs") { renderSubs(); }
    document.body.setAttribute("data-rendered", location.hash);  // for tests and scripts
  }

  // -- controls ---------------------------------------------------------------------------
  function fillSelects() {
    var status = $("status-filter");
    status.appendChild(option("", "all (" + data.rows.length + ")"));
    STATUSES.forEach(function (s) {
      if (data.counts[s]) { status.appendChild(option(s, (STATUS_NAMES[s] || s) + " (" + data.counts[s] + ")")); }
    });
    var subs = $("sub-filter");
    var perSub = {};
    data.rows.forEach(function (row) { perSub[row.c] = (perSub[row.c] || 0) + 1; });
    subs.appendChild(option("", "all sub-categories"));
    data.categories.forEach(function (group) {
      var optgroup = el("optgroup", {label: group[0]});
      group[1].forEach(function (sub) {
        optgroup.appendChild(option(sub, sub + " (" + (perSub[data.subs.indexOf(sub)] || 0) + ")"));
      });
      subs.appendChild(optgroup);
    });
    var reasons = {};
    data.rows.forEach(function (row) { if (row.r) { reasons[row.r] = (reasons[row.r] || 0) + 1; } });
    $("reason-filter").appendChild(option("", "any reason"));
    Object.keys(reasons).sort().forEach(function (r) { $("reason-filter").appendChild(option(r, r + " (" + reasons[r] + ")")); });
    var rejectReasons = {}, stages = {};
    data.rejects.forEach(function (r) { rejectReasons[r[0]] = (rejectReasons[r[0]] || 0) + 1; stages[r[1]] = (stages[r[1]] || 0) + 1; });
    $("reject-reason-filter").appendChild(option("", "all reasons (" + data.rejects.length + ")"));
    Object.keys(rejectReasons).sort().forEach(function (r) { $("reject-reason-filter").appendChild(option(r, r + " (" + rejectReasons[r] + ")")); });
    $("reject-stage-filter").appendChild(option("", "all stages"));
    Object.keys(stages).sort().forEach(function (s) { $("reject-stage-filter").appendChild(option(s, s + " (" + stages[s] + ")")); });
    Object.keys(rejectReasons).sort().forEach(function (r) {
      $("reason-links").appendChild(el("a", {"class": "chip", href: "#tab=rejects&rreason=" + encodeURIComponent(r)},
                                           [r + " ", el("b", {text: String(rejectReasons[r])})]));
    });
  }
  function wire() {
    [["status-filter", "status"], ["sub-filter", "sub"], ["reason-filter", "reason"]].forEach(function (pair) {
      $(pair[0]).addEventListener("change", function (event) { var c = {}; c[pair[1]] = event.target.value; setParams(c); });
    });
    $("reject-reason-filter").addEventListener("change", function (e) { setParams({rreason: e.target.value, rpage: ""}, true); });
    $("reject-stage-filter").addEventListener("change", function (e) { setParams({stage: e.target.value, rpage: ""}, true); });
    Array.prototype.forEach.call(document.querySelectorAll("[data-flag]"), function (box) {
      box.addEventListener("change", function () {
        var flags = Array.prototype.filter.call(document.querySelectorAll("[data-flag]"), function (b) { return b.checked; })
          .map(function (b) { return b.getAttribute("data-flag"); });
        setParams({flags: flags.join(",")});
      });
    });
    var timer = null;
    $("search").addEventListener("input", function (event) {
      clearTimeout(timer);
      timer = setTimeout(function () { setParams({q: event.target.value.trim()}); }, 250);
    });
    $("open-toggle").addEventListener("change", function (event) { setParams({open: event.target.checked ? "1" : ""}, true); });
    Array.prototype.forEach.call(document.querySelectorAll("[data-tab]"), function (button) {
      button.addEventListener("click", function () {
        var tab = button.getAttribute("data-tab");
        setParams({tab: tab === "samples" ? "" : tab}, true);
      });
    });
    $("reviewer").addEventListener("change", function () {
      try { localStorage.setItem("mis-review:reviewer", reviewer()); } catch (error) { /* ignore */ }
    });
    $("download").addEventListener("click", download);
    $("forget").addEventListener("click", function () {
      if (local.length && !window.confirm("Forget " + local.length + " decision(s) kept in this browser?")) { return; }
      local = [];
      remember();
      recompute();
      redrawDecisions();
    });
    $("help-button").addEventListener("click", function () { $("help").hidden = false; });
    $("zoom").addEventListener("click", function () { $("zoom").hidden = true; });
    $("help").addEventListener("click", function () { $("help").hidden = true; });
    KEYS.forEach(function (k) { $("help-keys").appendChild(el("dt", {text: k[0]})); $("help-keys").appendChild(el("dd", {text: k[1]})); });
    document.addEventListener("keydown", onKey);
    window.addEventListener("hashchange", function () {
      $("open-toggle").checked = params().get("open") === "1";
      render();
    });
  }
  function onKey(event) {
    var target = event.target;
    if (event.key === "Escape") { $("zoom").hidden = true; $("help").hidden = true; if (target.blur) { target.blur(); } return; }
    if (/^(INPUT|SELECT|TEXTAREA)$/.test(target.tagName) || event.ctrlKey || event.metaKey || event.altKey) { return; }
    var cards = $("cards").querySelectorAll(".card");
    var row = current >= 0 && cards[current] ? data.rows[parseInt(cards[current].getAttribute("data-position"), 10)] : null;
    var key = event.key;
    var digit = /^Digit([123])$/.exec(event.code || "");
    var handled = true;
    if (key === "j" || key === "ArrowDown") { setCurrent(current + 1, true); }
    else if (key === "k" || key === "ArrowUp") { setCurrent(current - 1, true); }
    else if (key === "]") { $("pager-top").querySelector("[data-page=next]") && $("pager-top").querySelector("[data-page=next]").click(); }
    else if (key === "[") { $("pager-top").querySelector("[data-page=prev]") && $("pager-top").querySelector("[data-page=prev]").click(); }
    else if (key === "/") { $("search").focus(); }
    else if (key === "?") { $("help").hidden = false; }
    else if (!row) { handled = false; }
    else if (digit && row.s !== "queue") {
      decide(row, {action: "drop", reason: DROP_REASONS[parseInt(digit[1], 10) - 1],
                   scope: event.shiftKey && !row.t ? "pair" : "sample"});
    }
    else if (key === "a" && row.s !== "queue") { decide(row, {action: "keep"}); }
    else if (row.s === "queue" && "tehx".indexOf(key) >= 0 && key.length === 1) {
      decide(row, {action: "resolve", route: {t: "train", e: "easy", h: "hard", x: "discard"}[key]});
    }
    else if (key === "m" && cards[current].querySelector("select.move")) { cards[current].querySelector("select.move").focus(); }
    else if (key === "z") { openZoom(row); }
    else if (key === "o") {
      Array.prototype.forEach.call(cards[current].querySelectorAll("details"), function (d) { d.open = !d.open; });
    }
    else { handled = false; }
    if (handled) { event.preventDefault(); }
  }

  // -- start ------------------------------------------------------------------------------
  function buildLookups() {
    data.rows.forEach(function (row) {
      rowsById[row.i] = row;
      var base = baseOf(row);
      var pair = pairOf(base);
      if (pair !== base) {
        var list = samplesOfPair[pair] = samplesOfPair[pair] || [];
        if (list.indexOf(base) < 0) { list.push(base); }
      }
    });
  }
  function start() {
    if (!data) { throw new Error("data/index.js did not load"); }
    buildLookups();
    storageKey = "mis-review:" + data.title + ":decisions";
    try {
      local = JSON.parse(localStorage.getItem(storageKey) || "[]");
      $("reviewer").value = localStorage.getItem("mis-review:reviewer") || "";
    } catch (error) { local = []; }
    saved = data.decisions.slice();
    $("meta").textContent = "backend: " + data.backend + " · " + data.rows.length + " samples · " +
      data.rejects.length + " rejects · " + data.decisions.length + " decisions in the run's log";
    $("open-toggle").checked = params().get("open") === "1";
    fillSelects();
    wire();
    recompute();
    render();
    document.body.setAttribute("data-ready", "1");
    if (/^https?:$/.test(location.protocol)) {
      fetch("/api/decisions").then(function (response) {
        if (!response.ok) { return; }
        return response.json().then(function (log) {
          served = true;
          saved = log;
          setStatus("served: decisions are saved to the run folder");
          recompute();
          redrawDecisions();
        });
      }).catch(function () { /* a plain static server: decisions stay in the browser */ });
    }
  }

  window.MIS_REVIEW = {index: receiveIndex, details: receiveDetails, start: start};
})();
