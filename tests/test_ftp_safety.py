"""Name sanitising, argument checks and PASV pinning, without sockets (F1, F2, F4)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asyncnet.errors import LocalProtocolError
from asyncnet.ftp import UnsafeRemotePath
from asyncnet.ftp._integrity import PartFile, RemoteFingerprint
from asyncnet.ftp._safety import check_argument, local_path_for, pin_passive_host, safe_name


@pytest.mark.parametrize(
    "name", ["", ".", "..", "../x", "a/b", "..\\x", "x\x00y", "tab\there", "esc\x1b[2J", "/etc"]
)
def test_unsafe_names_are_refused(name: str) -> None:
    """F2: not one harmless path component."""
    with pytest.raises(UnsafeRemotePath):
        safe_name(name)


@pytest.mark.parametrize("name", ["notes.txt", ".hidden", "...", "a..b", "café", "spaces ok"])
def test_ordinary_names_pass(name: str) -> None:
    assert safe_name(name) == name


@pytest.mark.parametrize("path", ["../x", "a/../../x", "/etc/x", "\\x", "a//b", "a/./b"])
def test_relative_paths_that_escape_are_refused(tmp_path: Path, path: str) -> None:
    """F2: every component is checked; absolute paths are refused."""
    with pytest.raises(UnsafeRemotePath):
        local_path_for(tmp_path, path)


def test_symlink_inside_the_destination_cannot_lead_outside(tmp_path: Path) -> None:
    """F2: a symlink already in the destination that points outside is refused."""
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "link").symlink_to(tmp_path)
    with pytest.raises(UnsafeRemotePath, match="resolves outside"):
        local_path_for(dest, "link/x")
    assert local_path_for(dest, "sub/x") == dest / "sub" / "x"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=4))
def test_any_accepted_path_stays_under_the_root(parts: list[str]) -> None:
    """F2: whatever the server sends, an accepted path is inside the destination."""
    root = Path(os.path.realpath(tempfile.gettempdir())) / "asyncnet-ftp-root-need-not-exist"
    try:
        local = local_path_for(root, "/".join(parts))
    except UnsafeRemotePath:
        return
    assert os.path.commonpath([root, os.path.realpath(local)]) == str(root)
    assert ".." not in local.parts


@pytest.mark.parametrize("bad", ["a\rb", "a\nb", "a\x00b", "x\r\nDELE y"])
def test_cr_lf_nul_in_arguments_are_local_protocol_errors(bad: str) -> None:
    """F4: refused before anything is sent; the error is a ValueError too."""
    with pytest.raises(LocalProtocolError, match=r"FTP path must not contain (CR|LF|NUL)"):
        check_argument(bad)
    assert issubclass(LocalProtocolError, ValueError)


@pytest.mark.parametrize("announced", ["10.0.0.9", "192.0.2.1", "0.0.0.0", None, "127.0.0.1"])
def test_passive_host_is_always_the_control_peer(announced: str | None) -> None:
    """F1: whatever the PASV reply says, the data connection goes to the control peer."""
    assert pin_passive_host(announced, "127.0.0.1") == "127.0.0.1"


def test_part_file_resumes_only_when_the_fingerprint_matches(tmp_path: Path) -> None:
    """F3: the sidecar records SIZE/MDTM; any change means starting from 0."""
    dest = tmp_path / "f.bin"
    first = RemoteFingerprint("f.bin", 100, "20240101000000")
    part = PartFile(dest)
    part.open(first, 0)
    part.write(b"x" * 40)
    part.close()
    assert PartFile(dest).resumable_offset(first) == 40
    assert PartFile(dest).resumable_offset(RemoteFingerprint("f.bin", 100, "20250101000000")) == 0
    assert PartFile(dest).resumable_offset(RemoteFingerprint("f.bin", 101, "20240101000000")) == 0
    assert PartFile(dest).resumable_offset(RemoteFingerprint("f.bin", 100, None)) == 0
    (tmp_path / "f.bin.part.json").write_text("{not json")
    assert PartFile(dest).resumable_offset(first) == 0
    assert not dest.exists()
