"""docs/reliability.md names the tests that show each guarantee: every one it names exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_test_the_reliability_doc_names_exists() -> None:
    doc = (ROOT / "docs" / "reliability.md").read_text()
    named = set(re.findall(r"`(?:[\w/]+\.py::)?(test_\w+)`", doc))
    defined = {
        name
        for path in (ROOT / "tests").rglob("test_*.py")
        for name in re.findall(r"^(?:async )?def (test_\w+)", path.read_text(), re.MULTILINE)
    }
    assert len(named) > 50
    assert sorted(named - defined) == []
