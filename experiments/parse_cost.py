"""Cost of the fast path's head parse on one plain verify request, in µs (best of 5).

    python experiments/parse_cost.py [SOURCE_TREE]

SOURCE_TREE (default: this checkout) is put first on ``sys.path``, so the same command times
another checkout's parser too, e.g. the one before llhttp (``git worktree add /tmp/before
d4528a8``; its parser was ``verifier.service.fastpath.parse``).
"""

from __future__ import annotations

import importlib
import sys
import timeit
from pathlib import Path

REQUEST = (
    b"POST /v1/verify HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nContent-Type: text/plain\r\n"
    b"Authorization: Bearer s-0123456789ab.abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQ\r\n"
    b"Content-Length: 300\r\n\r\n" + b"x" * 300
)


def main() -> None:
    tree = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parents[1]).resolve()
    sys.path.insert(0, str(tree))
    try:
        parse = importlib.import_module("verifier.service.http1").parse
    except ImportError:
        parse = importlib.import_module("verifier.service.fastpath").parse
    n = 200_000
    best = min(timeit.repeat(lambda: parse(REQUEST, 8192), number=n, repeat=5)) / n * 1e6
    print(f"{tree}: {best:.2f} µs per parse")


if __name__ == "__main__":
    main()
