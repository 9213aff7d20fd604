"""`verifier demo` says what a newcomer needs, and its hints work while it runs.

The "Mint more tokens" command runs as printed (the issuer key is where it points, for as long
as the demo serves); ``--once`` prints no curl line for a service that is gone by then; the
token's lifetime is said.
"""

from __future__ import annotations

import json
import re
import shlex
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

from service_process import VERIFIER, base_env, run_verifier


def test_once_says_the_lifetime_and_prints_no_curl_line() -> None:
    result = run_verifier(["demo", "--once", "--listen", "127.0.0.1:0"], base_env(), timeout=60)
    assert result.returncode == 0, result.stderr
    assert "Self-check passed" in result.stdout
    assert re.search(
        r"It is valid for 60 s \(until \d\d:\d\d:\d\d\), and for one scan only", result.stdout
    )
    assert "curl" not in result.stdout
    assert "Mint more tokens" not in result.stdout  # nothing left to mint for


def test_the_mint_hint_works_while_the_demo_serves() -> None:
    proc = subprocess.Popen(
        [VERIFIER, "demo", "--listen", "127.0.0.1:0"],
        env=base_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + 60
        while not any(line.startswith("(other holders") for line in lines):
            assert time.monotonic() < deadline and proc.poll() is None, "".join(lines)
            lines.append(proc.stdout.readline())
        text = "".join(lines)
        url = re.search(r"curl -s -X POST (\S+)", text)[1]  # type: ignore[index]
        credential = re.search(r"Bearer (s-[^'\s]+)", text)[1]  # type: ignore[index]
        hints = [line.strip() for line in lines if line.strip().startswith("verifier mint --key")]
        assert len(hints) == 2, text
        for hint in hints:
            argv = shlex.split(hint)
            assert Path(argv[argv.index("--key") + 1]).is_file(), hint
            minted = run_verifier(argv[1:], base_env())
            assert minted.returncode == 0, minted.stderr
            req = urllib.request.Request(
                url,
                data=minted.stdout.strip().encode(),
                headers={"Authorization": f"Bearer {credential}", "Content-Type": "text/plain"},
            )
            with urllib.request.urlopen(req, timeout=10) as resp:
                verdict = json.loads(resp.read())
            assert verdict["valid"] is True, (hint, verdict)
        key_dir = Path(shlex.split(hints[0])[3]).parent
        proc.send_signal(signal.SIGINT)
        assert proc.wait(20) == 0
        assert not key_dir.exists()  # the throw-away keys go with the demo
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
