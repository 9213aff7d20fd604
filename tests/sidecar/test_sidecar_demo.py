"""`verifier demo --sidecar` tells the whole story on one machine, with no Redis, and says so."""

from __future__ import annotations

import pytest
from service_process import base_env, run_verifier

pytestmark = pytest.mark.timeout(60)


def test_the_sidecar_demo_runs_the_whole_path() -> None:
    done = run_verifier(["demo", "--sidecar"], base_env(), timeout=50)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert '"mode":"online"' in out and '"settle_later":true' in out
    assert '"reason":"replayed","covered":false,"mode":"offline"' in out
    assert "0 pending, 1 confirmed" in out
    assert out.rstrip().endswith("Sidecar demo passed.")
