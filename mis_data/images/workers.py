"""Typography pictures drawn in worker processes, so every core of the machine draws.

Drawing a picture, encoding its PNG and taking its pHash are nearly all the CPU an offline build
spends on images, and in worker threads they share one interpreter lock with the rest of the
build: on the two-core demo machine the images stage went on for seconds after the questions
were done, one picture at a time. Worker processes draw side by side instead. The same Pillow
draws the same bytes in a worker as in the build's own process, so no image changes.

One pool serves the whole process (started on first use, ended at exit). Its workers are forked
from a server that has imported Pillow, imagehash and the main module once (``forkserver``;
``spawn`` where that does not exist), never from the build itself, whose threads a fork would
copy mid-step. As with any ``multiprocessing`` program, a script that builds from Python must
guard its entry point (``if __name__ == "__main__":``), since the server imports it; the
``mis-data`` command and ``python -m mis_data`` do. On a one-core machine, or where processes
cannot be started, the pictures are drawn in a thread as before.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from mis_data.images.fingerprint import phash_hex
from mis_data.images.typography import encode_png, typography_image

_POOL: ProcessPoolExecutor | None = None
_POOL_LOCK = threading.Lock()
_STARTING: list[threading.Thread] = []  # the one background start, once begun


def draw(text: str, style_seed: str, size: int) -> tuple[bytes, str]:
    """One typography picture as PNG bytes (``render_typography``'s) and its pHash."""
    image = typography_image(text, style_seed, size)
    return encode_png(image), phash_hex(image)


def process_pool() -> ProcessPoolExecutor | None:
    """The shared pool of drawing processes, one per core; None on a single core."""
    global _POOL
    cores = os.cpu_count() or 1
    if cores < 2:
        return None
    with _POOL_LOCK:
        if _POOL is None:
            methods = multiprocessing.get_all_start_methods()
            context = multiprocessing.get_context("forkserver" if "forkserver" in methods
                                                  else "spawn")
            if context.get_start_method() == "forkserver":
                context.set_forkserver_preload(["__main__", __name__])
            try:
                _POOL = ProcessPoolExecutor(max_workers=cores, mp_context=context)
            except (ImportError, OSError, NotImplementedError):  # no semaphores (some sandboxes)
                return None
        return _POOL


def start_workers() -> None:
    """Start the pool's processes now, in a background thread, so that a build's first pictures
    do not wait for them (the server's imports take about half a second): the command calls it
    as soon as it knows the build draws typography, while its own libraries still load. Calling
    it again does nothing."""
    pool = process_pool()
    with _POOL_LOCK:
        if pool is None or _STARTING:
            return
        _STARTING.append(threading.Thread(target=_touch, args=(pool,), daemon=True))
    _STARTING[0].start()


def _touch(pool: ProcessPoolExecutor) -> None:
    try:
        for started in [pool.submit(os.getpid) for _ in range(os.cpu_count() or 1)]:
            started.result()
    except (BrokenProcessPool, RuntimeError):  # a pool that broke or shut down: drawing says so
        return


async def draw_typography(text: str, style_seed: str, size: int) -> tuple[bytes, str]:
    """``draw`` in the process pool (a thread on one core). A pool whose worker died (killed
    for memory, say) is dropped, so the next build starts a new one; this one fails and its
    rerun resumes."""
    global _POOL
    pool = process_pool()
    loop = asyncio.get_running_loop()
    try:
        return await loop.run_in_executor(pool, draw, text, style_seed, size)
    except BrokenProcessPool:
        with _POOL_LOCK:
            if _POOL is pool:
                _POOL = None
        raise
