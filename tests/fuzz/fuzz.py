"""Coverage-guided fuzzing of the token core and the fast-path framing with atheris.

    python tests/fuzz/fuzz.py core  [libFuzzer flags] [corpus dirs]
    python tests/fuzz/fuzz.py http1 [libFuzzer flags] [corpus dirs]

The verifier's modules are instrumented (the targets are ``targets.check_core`` and
``targets.check_http1``); a failed property or any exception other than the documented ones is
a crash: libFuzzer stops, writes the input to ``-artifact_prefix`` and exits non-zero.
``tests/fuzz/run`` is the bounded run CI does.
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "support")]

with atheris.instrument_imports(include=["verifier", "targets"]):
    import targets

TARGETS = {"core": targets.check_core, "http1": targets.check_http1}


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        sys.exit(f"usage: {sys.argv[0]} {{{','.join(TARGETS)}}} [libFuzzer flags] [corpus dirs]")
    check = TARGETS[sys.argv[1]]
    atheris.Setup([sys.argv[0], *sys.argv[2:]], check)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
