"""The docs: a page per concept, the features issue 9 found undocumented, a clean build."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT

PAGES = ["handlers", "servers", "framing", "clients", "creosote", "testing", "errors"]


def page(name: str) -> str:
    return (ROOT / "docs" / f"{name}.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("name", PAGES)
def test_each_concept_has_a_page_with_its_reference(name: str) -> None:
    """Prose and examples first, then the API reference generated from the docstrings."""
    text = page(name)
    assert text.startswith("# ")
    assert "\n::: asyncnet" in text


@pytest.mark.parametrize(
    ("name", "needle"),
    [
        ("framing", "LengthPrefix("),
        ("framing", "FramedClient.connect("),
        ("handlers", "## Sharing state between handlers"),
        ("running", "until=scripted_session"),
        ("running", "ready=ready"),
        ("running", "asyncnet.run(main())"),
        ("running", "catch_signals()"),
        ("running", "SIGTERM"),
        ("servers", "| `name` |"),
        ("servers", "| `family` |"),
        ("servers", "| `ssl_handshake_timeout` |"),
        ("servers", "| `receive_buffer` |"),
    ],
)
def test_formerly_undocumented_features_are_documented(name: str, needle: str) -> None:
    """Issue 9 item 6: each feature the first-hour review could not find has its place."""
    assert needle in page(name)


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("mkdocs") is None, reason="the docs extra is not installed"
)
def test_docs_build_without_warnings(tmp_path: Path) -> None:
    """``make docs``' build: mkdocs --strict fails on any warning (a broken reference...)."""
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, NO_MKDOCS_2_WARNING="1"),
    )
    assert result.returncode == 0, result.stderr
    assert "WARNING" not in result.stderr, result.stderr
    reference = (tmp_path / "servers.html").read_text(encoding="utf-8")
    assert "ssl_handshake_timeout" in reference
