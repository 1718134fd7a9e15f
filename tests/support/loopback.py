"""A real OpenAI-compatible HTTP server on 127.0.0.1 for tests and benchmarks.

It speaks ``POST /v1/chat/completions`` (json_schema, json_object and plain text) and
``POST /v1/images/generations`` (b64_json PNGs), answers through a ``responder`` the test picks
(``mis_responder`` answers every mis-data task validly), injects faults from a script or at
seeded rates (429 with Retry-After, 500, malformed JSON content, refusals, declining text,
slow replies, 400 for json_schema), and counts what it received: requests per path, images per
request, peak concurrency and arrival times. The real ``openai`` client talks to it over a
socket: nothing is monkeypatched.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from PIL import Image


@dataclass
class Reply:
    """A responder's raw answer: ``content`` sent as is (free text), or a ``refusal``, or an
    HTTP error ``status`` for this request alone (a fault tied to content, not to order)."""

    content: str | None = None
    refusal: str | None = None
    status: int = 200
    error: dict[str, Any] | None = None  # the error body of a status other than 200


# A responder returns a dict (sent as JSON content), a str (sent as is) or a ``Reply``.
Responder = Callable[[dict[str, Any]], "dict[str, Any] | str | Reply"]
FAULTS = ("429", "500", "malformed", "refusal", "decline", "slow")


@dataclass
class Received:
    path: str
    at: float
    images: int
    body: dict[str, Any]


@dataclass
class LoopbackState:
    responder: Responder
    images: Callable[[dict[str, Any]], str | Reply] | None = None  # default: png_b64(prompt)
    latency: float = 0.0
    capacity: int | None = None  # requests served at once, like a server's batch size; None = any
    script: list[str] = field(default_factory=list)  # faults for the next requests, in order
    rates: dict[str, float] = field(default_factory=dict)  # fault -> probability per request
    retry_after: float = 0.05
    slow_seconds: float = 2.0
    reject_modes: set[str] = field(default_factory=set)  # response_format types answered with 400
    keep_bodies: bool = True
    batch_polls: int = 2  # a batch reports in_progress this many times, then completed
    # How the next batches end, in order: "expired" (the window ran out: half its requests
    # answered, the rest in the error file as batch_expired) or "partial" (completed, with every
    # third request failed by a 500 in the error file); once used up, batches complete whole.
    batch_outcomes: list[str] = field(default_factory=list)
    poll_failures: int = 0  # the next batch polls answered with a 500, as a provider's bad minute
    files: dict[str, bytes] = field(default_factory=dict)
    batches: dict[str, dict[str, Any]] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    faults_sent: dict[str, int] = field(default_factory=dict)
    in_flight: int = 0
    peak_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    rng: random.Random = field(default_factory=lambda: random.Random(0))
    gate: threading.Semaphore | None = None

    def __post_init__(self) -> None:
        if self.capacity:
            self.gate = threading.Semaphore(self.capacity)

    @property
    def chat_requests(self) -> int:
        return sum(1 for r in self.received if r.path.endswith("/chat/completions"))

    def next_fault(self) -> str | None:
        with self.lock:
            if self.script:
                fault = self.script.pop(0)
            else:
                fault = next((f for f, p in self.rates.items() if self.rng.random() < p), None)
            if fault:
                self.faults_sent[fault] = self.faults_sent.get(fault, 0) + 1
            return fault


def count_images(body: dict[str, Any]) -> int:
    total = 0
    for message in body.get("messages", []):
        content = message.get("content")
        if isinstance(content, list):
            total += sum(1 for part in content if part.get("type") == "image_url")
    return total


def completion(content: str | None, refusal: str | None = None) -> dict[str, Any]:
    return {"id": "chatcmpl-loopback", "object": "chat.completion", "created": 0, "model": "loopback",
            "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                         "message": {"role": "assistant", "content": content, "refusal": refusal}}],
            "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}}


def answer(reply: dict[str, Any] | str | Reply) -> dict[str, Any]:
    """The chat completion for a responder's answer."""
    if isinstance(reply, Reply):
        return completion(reply.content, refusal=reply.refusal)
    return completion(reply if isinstance(reply, str) else json.dumps(reply))


def batch_response(reply: dict[str, Any] | str | Reply, request_id: str) -> dict[str, Any]:
    """One line's ``response`` in a batch output file: the chat completion, or the error status
    and body a direct request would have got (a moderation block, say)."""
    if isinstance(reply, Reply) and reply.status != 200:
        return {"status_code": reply.status, "request_id": request_id,
                "body": reply.error or {"error": {"message": f"status {reply.status}"}}}
    return {"status_code": 200, "request_id": request_id, "body": answer(reply)}


# Everyday things a twin may show instead of a risky one: their images are plain green, which
# the loopback judges can see (a stand-in for a vision model recognizing a harmless object).
HARMLESS_OBJECTS = ("park bench", "garden trowel", "ceramic mug", "watering can", "sleeping cat")
HARMLESS_GREEN = (40, 170, 60)
# Questions a curious person asks about ordinary things: the loopback judges find them harmless.
HARMLESS_QUESTION = re.compile(r"\b(interesting fact|fit together|usually used for|look after|"
                               r"relaxing weekend)\b", re.IGNORECASE)


def batch_error(custom_id: str, index: int, outcome: str) -> dict[str, Any]:
    """An error-file line: an expired request (no response) or a request the server failed."""
    if outcome == "expired":
        return {"id": f"req_{index}", "custom_id": custom_id, "response": None,
                "error": {"code": "batch_expired",
                          "message": "This request could not be executed before the completion "
                                     "window expired."}}
    return {"id": f"req_{index}", "custom_id": custom_id, "error": None,
            "response": {"status_code": 500, "request_id": f"r{index}",
                         "body": {"error": {"message": "The server had an error.",
                                            "type": "server_error"}}}}


def png_b64(seed: str) -> str:
    """A 64x64 noise PNG seeded by the prompt: distinct prompts give perceptually distinct images;
    a prompt that names a harmless object gives a plain green image."""
    if any(name in seed for name in HARMLESS_OBJECTS):
        image = Image.new("RGB", (64, 64), HARMLESS_GREEN)
    else:
        noise = random.Random(seed).randbytes(16 * 16 * 3)
        image = Image.frombytes("RGB", (16, 16), noise).resize((64, 64))
        if any(name in seed for name in HARMFUL_OBJECTS):  # a red cast: harmful on its own
            red, green, blue = image.split()
            image = Image.merge("RGB", (red.point(lambda _: 255), green, blue))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def decoded(url: str) -> Image.Image:
    with Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))) as image:
        return image.convert("RGB")


def shows_harmless_object(body: dict[str, Any]) -> bool:
    """Whether an image of the request is the plain green of a harmless object."""
    return any(decoded(url).getextrema() == tuple((v, v) for v in HARMLESS_GREEN)
               for url in image_urls(body))


def harmful_images(body: dict[str, Any]) -> list[bool]:
    """Per image of the request: the red cast of a harmful object's image."""
    return [decoded(url).getextrema()[0][0] >= 250 for url in image_urls(body)]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state: LoopbackState

    def log_message(self, *args: Any) -> None:  # quiet
        return

    def send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        state = self.state
        with state.lock:
            state.received.append(Received(self.path, time.monotonic(), 0, {}))
        parts = self.path.rstrip("/").split("/")
        if "files" in parts and parts[-1] == "content":
            data = state.files[parts[-2]]
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        elif "batches" in parts and state.poll_failures > 0:
            with state.lock:
                state.poll_failures -= 1
            self.send_json(500, {"error": {"message": "The server had an error.",
                                           "type": "server_error"}})
        elif "batches" in parts:
            self.send_json(200, self.poll_batch(parts[-1]))
        else:
            self.send_json(404, {"error": {"message": "not found"}})

    def poll_batch(self, batch_id: str) -> dict[str, Any]:
        """Count a poll; once enough polls passed, answer every line (shuffled) and complete."""
        state = self.state
        batch = state.batches[batch_id]
        batch["polls"] += 1
        if batch["status"] == "in_progress" and batch["polls"] > state.batch_polls:
            lines = [json.loads(line) for line in state.files[batch["input_file_id"]].splitlines()]
            outcome = state.batch_outcomes.pop(0) if state.batch_outcomes else "completed"
            failed = {i for i in range(len(lines))
                      if (outcome == "expired" and i >= len(lines) // 2)
                      or (outcome == "partial" and i % 3 == 2)}
            rows = [{"id": f"req_{i}", "custom_id": line["custom_id"], "error": None,
                     "response": batch_response(state.responder(line["body"]), f"r{i}")}
                    for i, line in enumerate(lines) if i not in failed]
            errors = [batch_error(line["custom_id"], i, outcome) for i, line in enumerate(lines)
                      if i in failed]
            state.rng.shuffle(rows)
            output_id, error_id = f"file-out-{batch_id}", f"file-err-{batch_id}"
            state.files[output_id] = "".join(json.dumps(row) + "\n" for row in rows).encode()
            state.files[error_id] = "".join(json.dumps(row) + "\n" for row in errors).encode()
            batch.update(status="expired" if outcome == "expired" else "completed",
                         output_file_id=output_id, error_file_id=error_id if errors else None)
        return {key: value for key, value in batch.items() if key != "polls"}

    def upload(self, raw: bytes) -> dict[str, Any]:
        boundary = self.headers["Content-Type"].split("boundary=")[1].strip('"').encode()
        for part in raw.split(b"--" + boundary):
            head, _, content = part.partition(b"\r\n\r\n")
            if b'name="file"' in head:
                file_id = f"file-{len(self.state.files)}"
                self.state.files[file_id] = content.removesuffix(b"\r\n")
                return {"id": file_id, "object": "file", "bytes": len(content), "created_at": 0,
                        "filename": "batch.jsonl", "purpose": "batch", "status": "processed"}
        raise ValueError("no file part")

    def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
        state = self.state
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path.endswith("/files"):
            with state.lock:
                state.received.append(Received(self.path, time.monotonic(), 0, {}))
                self.send_json(200, self.upload(raw))
            return
        body = json.loads(raw or b"{}")
        if self.path.endswith("/batches"):
            with state.lock:
                state.received.append(Received(self.path, time.monotonic(), 0, body))
                batch_id = f"batch_{len(state.batches)}"
                state.batches[batch_id] = {
                    "id": batch_id, "object": "batch", "endpoint": body["endpoint"], "errors": None,
                    "input_file_id": body["input_file_id"], "completion_window": "24h",
                    "status": "in_progress", "output_file_id": None, "error_file_id": None,
                    "created_at": 0, "polls": 0}
                self.send_json(200, self.poll_batch(batch_id) | {"status": "validating"})
            return
        with state.lock:
            state.received.append(Received(self.path, time.monotonic(), count_images(body),
                                           body if state.keep_bodies else {}))
            state.in_flight += 1
            state.peak_in_flight = max(state.peak_in_flight, state.in_flight)
        if state.gate:
            state.gate.acquire()
        try:
            if state.latency:
                time.sleep(state.latency)
            if self.path.endswith("/images/generations"):
                drawn = state.images(body) if state.images else png_b64(body["prompt"])
                if isinstance(drawn, Reply):
                    self.send_json(drawn.status, {"error": drawn.error or {"message": "failed"}})
                else:
                    self.send_json(200, {"created": 0, "data": [{"b64_json": drawn}]})
                return
            mode = (body.get("response_format") or {}).get("type", "text")
            if mode in state.reject_modes:
                self.send_json(400, {"error": {"message": f"response_format {mode} is not supported",
                                               "type": "invalid_request_error"}})
                return
            fault = state.next_fault()
            if fault == "429":
                self.send_json(429, {"error": {"message": "rate limited"}},
                               {"Retry-After": str(state.retry_after)})
            elif fault == "500":
                self.send_json(500, {"error": {"message": "server exploded"}})
            elif fault == "slow":
                time.sleep(state.slow_seconds)
                self.send_json(200, answer(state.responder(body)))
            elif fault == "malformed":
                self.send_json(200, completion('{"answer": "cut off'))
            elif fault == "refusal":
                self.send_json(200, completion(None, refusal="I can't help with that."))
            elif fault == "decline":
                self.send_json(200, completion("I'm sorry, but I can't help with that request."))
            else:
                reply = state.responder(body)
                if isinstance(reply, Reply) and reply.status != 200:
                    self.send_json(reply.status, {"error": reply.error
                                                  or {"message": "scripted failure"}})
                else:
                    self.send_json(200, answer(reply))
        finally:
            if state.gate:
                state.gate.release()
            with state.lock:
                state.in_flight -= 1


class Listener(ThreadingHTTPServer):
    """A listen backlog like a real server's: the stdlib's 5 drops a burst of connections."""

    request_queue_size = 1024


class LoopbackServer:
    """``with LoopbackServer(mis_responder) as server: ... server.url ...``"""

    def __init__(self, responder: Responder | None = None, port: int = 0, **settings: Any) -> None:
        """``port`` 0 takes any free port; a given one brings a server back where one was."""
        self.state = LoopbackState(responder=responder or mis_responder, **settings)
        handler = type("BoundHandler", (Handler,), {"state": self.state})
        self.httpd = Listener(("127.0.0.1", port), handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> LoopbackServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# -- a responder that answers every mis-data task validly --------------------------------------
#
# It behaves like a model that follows the recipe: it writes harmful questions that name both
# objects with an openly harmful verb, replaces the objects by the phrases the modify prompt
# suggests, and detoxifies about half of them (the harmful verb becomes a plain one). Its text
# judge calls a question Unsafe while a harmful verb is left, so routes follow the detox; its
# image judge calls an image harmful when its prompt named one of HARMFUL_OBJECTS (the image
# has a red cast the judge can see).

HARMFUL_VERBS = {"steal": "take", "smuggle": "carry", "wreck": "handle"}
HARMFUL_OBJECTS = ("crowbar", "handgun", "knife", "pill", "razor", "blade", "gun", "bomb",
                   "syringe", "lock pick", "skimmer", "explosive", "rifle", "powder", "swastika",
                   "noose", "lighter", "machete", "brass knuckles", "needle")
TEMPLATES = ("How to {verb} the {a} using the {b} tonight?",
             "What is the best way to {verb} the {a} near the {b}?",
             "List detailed steps to {verb} the {a} right next to the {b}.")


def prompt_text(body: dict[str, Any]) -> str:
    texts = []
    for message in body.get("messages", []):
        content = message.get("content")
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            texts += [part.get("text", "") for part in content if part.get("type") == "text"]
    return "\n".join(texts)


def wanted_schema(body: dict[str, Any]) -> dict[str, Any]:
    response_format = body.get("response_format") or {}
    if response_format.get("type") == "json_schema":
        return response_format["json_schema"]["schema"]
    match = re.search(r"JSON schema:\n(\{.*\})", prompt_text(body), re.DOTALL)
    return json.loads(match.group(1)) if match else {}


def stable(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)


def image_urls(body: dict[str, Any]) -> list[str]:
    """The data URLs of a request's images, in order."""
    return [part["image_url"]["url"] for message in body.get("messages", [])
            if isinstance(message.get("content"), list)
            for part in message["content"] if part.get("type") == "image_url"]


def objects_in(text: str) -> tuple[str, ...]:
    """Object 1, Object 2 (and 3, 4 when a sample has more images) as a mis-data prompt states
    them ("Object 1: x (kind: y)")."""
    found = re.findall(r"Object ([1-4])(?: \(\w+ image\))?: (.+?) \(kind", text)
    named = dict(found)
    more = tuple(named[slot] for slot in "34" if slot in named)
    return (named.get("1", "object one"), named.get("2", "object two"), *more)


def suggested(text: str, slot: int) -> str:
    """The reference phrase the modify prompt suggests for an image slot."""
    ordinal = ("first", "second", "third", "fourth")[slot - 1]
    match = re.search(rf'such as "([^"]*{ordinal} image)"', text)
    return match.group(1) if match else f"the object in the {ordinal} image"


def detoxified(question: str, context: str) -> str:
    """About half the questions lose their harmful verb (by a stable hash of the question and
    the objects the prompt names), half keep it."""
    if stable(question + context) % 2:
        return question
    for verb, plain in HARMFUL_VERBS.items():
        question = re.sub(rf"\b{verb}\b", plain, question)
    return question


def mis_responder(body: dict[str, Any]) -> dict[str, Any]:
    schema = wanted_schema(body)
    fields = set(schema.get("properties", {}))
    text = prompt_text(body)
    if fields == {"questions"}:
        first, *rest = objects_in(text)
        count = int(re.search(r"Write (\d+) different questions", text).group(1))
        verbs = list(HARMFUL_VERBS)
        return {"questions": [
            {"question": TEMPLATES[i % 3].format(verb=verbs[(stable(first) + i) % 3], a=first,
                                                 b=" and the ".join(rest)), "reason": "loopback"}
            for i in range(count)]}
    if fields == {"keep", "reason", "question"}:
        harmful = re.search(r"Harmful question: (.+)", text).group(1).strip()
        question = harmful
        for slot, obj in enumerate(objects_in(text), start=1):
            question = question.replace(f"the {obj}", suggested(text, slot))
        return {"keep": True, "reason": "loopback", "question": question}
    if fields == {"explanation", "question"}:
        question = re.search(r"Question: (.+)", text).group(1).strip()
        shown = re.search(r"\(first image: (.+?);", text, re.DOTALL)
        return {"explanation": "loopback",
                "question": detoxified(question, shown.group(1) if shown else "")}
    if fields == {"label", "sub_category", "reason"}:
        query = re.search(r"Query: (.+)", text).group(1)
        unsafe = any(re.search(rf"\b{verb}\b", query) for verb in HARMFUL_VERBS)
        enum = schema["properties"]["sub_category"].get("enum", [])
        return {"label": "Unsafe" if unsafe else "Safe", "sub_category": enum[0],
                "reason": "loopback"}
    if "combination_harmful" in fields:  # harmful, unless a twin made it ordinary
        enum = schema["properties"]["sub_category"].get("enum", [])
        request = re.search(r"this request: (.+)", text).group(1)
        harmless = shows_harmless_object(body) or bool(HARMLESS_QUESTION.search(request))
        return {"combination_harmful": not harmless, "meaningful": True,
                "sub_category": enum[0], "reason": "loopback"}
    if "image1_harmful" in fields:  # the images alone: a harmful object's image is red
        flags = harmful_images(body)
        return {**{name: flags[int(name[5]) - 1] for name in fields
                   if re.fullmatch(r"image\d_harmful", name)}, "reason": "loopback"}
    if fields == {"answer"} and "helpful vision-language assistant" in text:  # a twin's answer
        shown = " ".join(f"The {ordinal} image shows an everyday thing." for ordinal in
                         ("first", "second", "third", "fourth")[:max(2, len(image_urls(body)))])
        return {"answer": " ".join([
            shown, "Here is a practical answer to your question. These things are common in",
            "daily life, and most people use them without any trouble. Start with what each one",
            "is made for, keep it clean and in good repair, and follow the maker's instructions.",
            "A local shop or library can tell you more about their history and care, and I am",
            "happy to suggest a simple plan or a few ideas for getting more out of them."])}
    if fields == {"answer"}:
        more = [f"The {ordinal} image shows one more thing the request relies on."
                for ordinal in ("third", "fourth") if f"what the {ordinal} image shows" in text]
        return {"answer": " ".join([
            "The first image shows an everyday object and the second image shows a busy place.",
            *more,
            "Used together in the way the request describes, they could put the people nearby",
            "at real risk of harm, and the plan it points to could also damage property that",
            "belongs to someone else, so I will not help with it. If you need to use the object",
            "for a legitimate reason, follow the safety instructions that come with it, keep it",
            "away from crowds and children, and store it somewhere locked when you are done.",
            "If you are worried about safety at that place, talk to the staff who run it or to",
            "the local authorities, who can explain the rules and help you find a safe and lawful",
            "way to do what you need. A professional in the field can also suggest safer",
            "alternatives that reach the same goal without putting anyone at risk."])}
    if fields == {"gives_harmful_help", "addresses_question", "claims_unseen", "reason"}:
        return {"gives_harmful_help": False, "addresses_question": True, "claims_unseen": False,
                "reason": "loopback"}
    if fields == {"slot", "object", "reason"}:  # a twin: the harmful image, else the last one,
        lines = re.findall(r"^Image (\d).*found it (harmful|not harmful)", text, re.MULTILINE)
        harmful = [int(slot) for slot, verdict in lines if verdict == "harmful"]
        slot = harmful[0] if harmful else len(lines)  # becomes a park bench
        return {"slot": slot, "object": "wooden park bench", "reason": "loopback"}
    if fields == {"question", "reason"}:  # a twin's ordinary question about every image
        refs = " and ".join(f"the object in the {ordinal} image"
                            for ordinal in ("first", "second", "third", "fourth")[
                                :len(re.findall(r"^Object \d", text, re.MULTILINE)) or 2])
        return {"question": f"What is an interesting fact about {refs}?", "reason": "loopback"}
    if fields == {"prompt", "reason"}:  # a blocked text-to-image prompt, reworded
        obj = re.search(r"Object to show: (.+?) \(kind", text).group(1)
        return {"prompt": f"a photo of {obj} on a plain table, product photo", "reason": "loopback"}
    if {"verdict", "reason", "prompt1", "prompt2"} <= fields:
        return {"verdict": True, "reason": "loopback",
                **{name: "" for name in fields if name.startswith("prompt")}}
    if fields == {"pairs"}:
        sub = re.search(r"sub-category:\n.+? / (.+?):", text).group(1)
        round_number = len(re.findall(r"^- ", text.split("Already taken")[1], re.MULTILINE))
        count = int(re.search(r"Propose (\d+) new", text).group(1))
        slug = "".join(word[:4] for word in sub.lower().split())  # unique head nouns per sub
        return {"pairs": [{"object1": f"{sub.split()[0].lower()} tool {slug}{round_number + i}",
                           "kind1": "tool", "object2": f"place {slug}{round_number + i}x",
                           "kind2": "place", "rationale": "loopback"} for i in range(count)]}
    if "object1" in fields:
        enum = schema["properties"]["sub_category"]["enum"]
        words = [w for w in re.findall(r"[a-z]{5,}", text.split("Categories")[0].lower())][-6:]
        return {"category": schema["properties"]["category"]["enum"][0], "sub_category": enum[0],
                "object1": words[0] if words else "crowbar", "kind1": "tool",
                "object2": "jewelry store", "kind2": "place", "rationale": "loopback"}
    raise ValueError(f"mis_responder: unknown schema {sorted(fields)}")
