"""Child process for the SIGKILL test: journals acceptances in a loop and reports each one.

``python journal_child.py PATH`` runs 16 concurrent scanners against the journal at PATH and
writes ``<jti>\\n`` to stdout, flushed, only after the acceptance's commit has returned, the
way the sidecar answers 200 only after the commit. It never stops by itself.
"""

from __future__ import annotations

import asyncio
import sys

from verifier.sidecar.budget import OfflineBudget
from verifier.sidecar.journal import NEW, Acceptance, Journal


async def main(path: str) -> None:
    journal = await Journal.open(path, budget=OfflineBudget(max_count=1))

    async def scanner(n: int) -> None:
        i = 0
        while True:
            i += 1
            jti = f"J{n}-{i}"
            item = Acceptance(f"H{n}-{i}", jti, "v4.public.x", f"R{n}-{i}", f"S{n}", 1 + i)
            if (await journal.record(item)).outcome == NEW:
                sys.stdout.write(jti + "\n")
                sys.stdout.flush()

    sys.stdout.write("ready\n")
    sys.stdout.flush()
    await asyncio.gather(*(scanner(n) for n in range(16)))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
