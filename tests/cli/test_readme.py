"""README.md runs as written: the "Operate it" commands, top to bottom, in a fresh folder.

The command blocks are read from README.md itself, so the README cannot drift from what the
commands do. What this test changes, and nothing else:

* the folder: a temporary one holding a copy of ``examples/`` (the README runs from a clone);
* the ports: Redis's ``127.0.0.1:6379`` becomes a redis-server this test starts on a free port
  (never the machine's own Redis), and the service's ``:8080`` a free port;
* ``docker`` is a shell function that records its arguments (there is no Docker daemon here);
  the test then checks that the folder the container mounts holds no secret key;
* the block that installs Redis (``sudo apt-get install …``) is not run: this test starts its
  own Redis.

Every other ``sh`` block of the README is in :data:`NOT_RUN`, with why, so a new block is
either run here or said not to be.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from redis_server import RedisServer
from service_process import base_env, free_port

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
OPERATE = "## Operate it"
INSTALLS_REDIS = "sudo apt-get update"
# First lines of the blocks outside "Operate it", and why each is not run here.
NOT_RUN = {
    "python3 -m venv .venv": "makes a venv and installs into it; the demo is tested by itself",
    "pip install -e '.[dev]' && scripts/check": "the whole suite, this test included (CI)",
    "bench quick": "the bench's reference card (placeholders, long runs); tests/bench runs it",
    "verifier demo --sidecar": "the sidecar's reference card (placeholders); "
    "tests/sidecar runs the demo and the sidecar itself",
}
_BLOCK = re.compile(r"^```sh\n(.*?)^```", re.M | re.S)


def sh_blocks(text: str) -> list[tuple[str, str]]:
    """(the "## " section it is in, the block) for every ```sh block, in order."""
    out = []
    for m in _BLOCK.finditer(text):
        headings = re.findall(r"^## .*$", text[: m.start()], re.M)
        out.append((headings[-1] if headings else "", m[1]))
    return out


def operate_script(redis_port: int, port: int) -> str:
    """The "Operate it" blocks as one script, with the ports replaced."""
    blocks = [b for section, b in sh_blocks(README.read_text()) if section == OPERATE]
    script = "\n".join(b for b in blocks if not b.startswith(INSTALLS_REDIS))
    assert "127.0.0.1:6379" in script and ":8080" in script, "the README's ports changed"
    return script.replace("127.0.0.1:6379", f"127.0.0.1:{redis_port}").replace(":8080", f":{port}")


def test_every_readme_block_is_run_here_or_said_not_to_be() -> None:
    outside = [b for section, b in sh_blocks(README.read_text()) if section != OPERATE]
    firsts = {b.splitlines()[0] for b in outside}
    assert all(any(line.startswith(k) for k in NOT_RUN) for line in firsts), firsts
    inside = [b for section, b in sh_blocks(README.read_text()) if section == OPERATE]
    assert sum(b.startswith(INSTALLS_REDIS) for b in inside) == 1


@pytest.mark.slow
def test_operate_it_runs_as_written(tmp_path: Path) -> None:
    if shutil.which("curl") is None:
        pytest.fail("curl is not installed (the README uses it): apt-get install -y curl")
    shutil.copytree(REPO / "examples", tmp_path / "examples")
    port = free_port()
    prelude = 'docker() { printf "%s\\n" "$@" > "docker-$1.args"; }\n'
    with RedisServer() as redis:
        script = prelude + operate_script(redis.port, port)
        env = base_env(PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=tmp_path,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=180,
        )
    log = (tmp_path / "serve.log").read_text() if (tmp_path / "serve.log").exists() else ""
    detail = f"stdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-3000:]}\nlog:\n{log}"
    assert result.returncode == 0, detail

    # The offline check and the service both said the token is valid; the credential worked.
    assert '"valid": true' in result.stdout, detail
    answers = [line for line in result.stdout.splitlines() if line.startswith('{"valid":')]
    assert len(answers) == 1, detail
    verdict = json.loads(answers[0])
    assert verdict["valid"] is True and verdict["reason"] == "ok", detail
    # The scanner list names the scanner whose credential the README captured.
    assert re.search(r'"id": "s-[0-9a-f]+"', result.stdout), detail
    # The log: two workers on the port, and a clean stop (`wait` also saw exit status 0).
    assert log.count(f"serving on http://127.0.0.1:{port} ") == 2, detail
    assert "stopped: all 2 workers drained" in log, detail

    # Docker: the image is built and run with only the trust list and the root public key.
    run = (tmp_path / "docker-run.args").read_text().splitlines()
    mounts = [run[i + 1] for i, arg in enumerate(run) if arg == "-v"]
    assert mounts, run
    for mount in mounts:
        source = Path(mount.split(":")[0])
        assert source.is_dir(), mount
        assert sorted(p.name for p in source.iterdir()) == ["root.public", "trust.paseto"]
    assert (tmp_path / "docker-build.args").exists()
