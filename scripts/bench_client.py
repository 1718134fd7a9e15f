"""The model client against the bare SDK: 2,000 structured two-image requests at concurrency 64.

Prints rows/s of mis-data's client (through the label stage: cache, limits and validation on)
and of a bare ``AsyncOpenAI`` + ``chat.completions.parse`` + ``asyncio.gather`` loop on the same
requests to the same loopback server (0.2 s latency), their ratio, and peak RSS of each. It is
sections 1 and 2 of ``bench.py``; flags pass through (``--n``, ``--concurrency``, ``--latency``).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench import main  # noqa: E402

if __name__ == "__main__":
    sys.argv += ["--only", "speed", "--only", "memory", "--mem-n", "2000"]
    main()
