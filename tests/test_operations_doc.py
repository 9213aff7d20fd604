"""docs/OPERATIONS.md and the README's settings table keep up with the code.

Every setting of `verifier serve` and the admin commands is in the README's settings table,
every metric the service exports and every log event it writes is explained in
docs/OPERATIONS.md, and the sample config file there loads.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from verifier.config import AdminSettings, Settings
from verifier.service.metrics import Metrics

REPO = Path(__file__).resolve().parents[1]
OPERATIONS = (REPO / "docs" / "OPERATIONS.md").read_text()
README = (REPO / "README.md").read_text()
EVENTS = (
    "start stopping stop worker_exit worker_restart workers_failing store_down store_up "
    "trust_reload trust_reload_refused verdict malformed_request store_forgot"
).split()


def test_every_setting_is_in_the_readme_settings_table() -> None:
    table = README[README.index("### Settings") :]
    table = table[: table.index("\n### ", 1)]
    for cls in (Settings, AdminSettings):
        for field in dataclasses.fields(cls):
            assert f"`VERIFIER_{field.name.upper()}`" in table, field.name


def test_every_metric_is_explained() -> None:
    text = Metrics().render(1, 0.0, 1.0)
    names = set(re.findall(r"^# HELP (\w+) ", text, re.M))
    assert names
    for name in names:
        assert f"`{name}" in OPERATIONS, name


def test_every_log_event_is_explained_and_emitted() -> None:
    sources = "".join(
        p.read_text() for d in ("service", "store") for p in (REPO / "verifier" / d).glob("*.py")
    )
    for name in EVENTS:
        assert f"| `{name}` |" in OPERATIONS, name
        assert f'"{name}"' in sources, name
    documented = set(re.findall(r"^\| `(\w+)` \| `verifier", OPERATIONS, re.M))
    assert documented == set(EVENTS)


def test_every_sidecar_setting_and_metric_is_documented() -> None:
    from verifier.config import Listening, SidecarSettings

    section = README[README.index("## The gateway sidecar") :]
    section = section[: section.index("\n## ", 1)]
    shared = {f.name for f in dataclasses.fields(Listening)}
    for field in dataclasses.fields(SidecarSettings):
        if field.name not in shared:
            assert f"`VERIFIER_{field.name.upper()}`" in section, field.name
    source = (REPO / "verifier" / "sidecar" / "server.py").read_text()
    names = set(re.findall(r"# HELP (verifier_sidecar_\w+) ", source))
    assert len(names) >= 5
    for name in names:
        assert f"`{name}" in OPERATIONS, name
