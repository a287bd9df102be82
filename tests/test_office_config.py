"""The office's ``--config office.toml``: every setting read, every wrong one refused in
one line that names the file, the table and the key (no network here; the servers are
in test_office_config_servers.py)."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import typing
from pathlib import Path

import pytest
import trustme

from asyncnet.demos._office_config import (
    FTP_TLS_MODES,
    POP3_AUTH,
    POP3_TLS_MODES,
    SMTP_TLS_MODES,
    load_config,
)
from asyncnet.errors import ConfigurationError
from asyncnet.ftp import FTPClient
from asyncnet.mail import POP3_AUTH_METHODS, POP3Client, TLSMode

from .helpers import ROOT

ENV = {"OFFICE_SMTP": "s-secret", "OFFICE_POP3": "p-secret", "OFFICE_FTP": "f-secret"}


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "office.toml"
    path.write_text(text)
    return path


def refused(path: Path, environ: dict[str, str] | None = None) -> str:
    """The one-line message a config is refused with."""
    with pytest.raises(ConfigurationError) as caught:
        load_config(path, ENV if environ is None else environ)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_a_full_config_is_read_with_paths_from_the_files_directory(
    tmp_path: Path, ca: trustme.CA
) -> None:
    """Every table and key, relative paths taken from the config file's directory."""
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    identity = ca.issue_cert("office.example")
    identity.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "me.pem"))
    (tmp_path / "up.bin").write_bytes(b"x" * 10)
    path = write(
        tmp_path,
        """
[smtp]
host = "mail.example.org"
port = 587
user = "alice"
password_env = "OFFICE_SMTP"
tls = "starttls"
cafile = "ca.pem"
from = "alice@example.org"
to = ["bob@example.org", "carol@example.org"]

[pop3]
host = "pop.example.org"
user = "alice"
password_env = "OFFICE_POP3"
tls = "implicit"
port = 995
auth = "CRAM-MD5"
max_messages = 7
cafile = "ca.pem"
cert = "me.pem"

[ftp]
host = "ftp.example.org"
user = "bob"
password_env = "OFFICE_FTP"
tls = "explicit"
mode = "active"
download = ["pub/a.bin", "b.bin"]
upload = "up.bin"
upload_dir = "incoming/"
timeout = 5

[http]
url = "https://www.example.org/"
cafile = "ca.pem"
proxy = "socks5h://127.0.0.1:1080"
max_pages = 9
""",
    )
    config = load_config(path, ENV)
    assert config.smtp is not None
    assert config.pop3 is not None
    assert config.ftp is not None
    assert config.http is not None
    assert (config.smtp.host, config.smtp.port, config.smtp.tls) == (
        "mail.example.org",
        587,
        "starttls",
    )
    assert (config.smtp.user, config.smtp.password) == ("alice", "s-secret")
    assert config.smtp.sender == "alice@example.org"
    assert config.smtp.recipients == ["bob@example.org", "carol@example.org"]
    assert isinstance(config.smtp.ssl, ssl.SSLContext)
    assert (config.pop3.auth, config.pop3.tls, config.pop3.port) == ("cram-md5", "implicit", 995)
    assert (config.pop3.secret, config.pop3.max_messages) == ("p-secret", 7)
    assert isinstance(config.pop3.ssl, ssl.SSLContext)
    assert (config.ftp.user, config.ftp.password, config.ftp.tls) == ("bob", "f-secret", "explicit")
    assert config.ftp.passive is False
    assert config.ftp.downloads == ["pub/a.bin", "b.bin"]
    assert config.ftp.uploads == [tmp_path / "up.bin"]
    assert (config.ftp.upload_dir, config.ftp.timeout) == ("incoming", 5.0)
    assert config.ftp.ssl is None  # no TLS file: the system's trust store
    assert (config.http.proxy, config.http.max_pages) == ("socks5h://127.0.0.1:1080", 9)
    assert isinstance(config.http.ssl, ssl.SSLContext)


def test_a_table_left_out_is_a_job_not_run_and_defaults_apply(tmp_path: Path) -> None:
    path = write(tmp_path, '[ftp]\nhost = "127.0.0.1"\ndownload = "a.bin"\n')
    config = load_config(path, {})
    assert config.smtp is None
    assert config.pop3 is None
    assert config.http is None
    assert config.ftp is not None
    assert (config.ftp.user, config.ftp.password) == ("anonymous", "anonymous@")
    assert (config.ftp.port, config.ftp.tls, config.ftp.passive) == (None, "none", True)


def test_the_option_names_are_the_clients_own() -> None:
    """The config module spells the clients' choices out (it imports no client): the same."""
    assert set(POP3_AUTH) == set(POP3_AUTH_METHODS)
    assert set(SMTP_TLS_MODES) == set(typing.get_args(TLSMode))
    for mode in POP3_TLS_MODES:
        POP3Client("127.0.0.1", tls=mode)  # type: ignore[arg-type]  # accepted, not connected
    for mode in FTP_TLS_MODES:
        FTPClient("127.0.0.1", tls=mode)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # a password in the file: refused, pointing at password_env
        (
            '[pop3]\nhost = "h"\nuser = "u"\npassword = "hunter2"\n',
            "[pop3] password: passwords never go in the file; put it in an environment "
            'variable and name that here: password_env = "MY_POP3_PASSWORD"',
        ),
        ('[ftp]\nhost = "h"\ndownload = "a"\npasive = "x"\n', "[ftp] pasive: unknown key"),
        ('[ftp]\nhost = "h"\ndownload = "a"\nuplaod = "x"\n', "(did you mean upload?)"),
        (
            '[smtp]\nhost = "h"\nport = "25"\nfrom = "a@b"\nto = "c@d"\n',
            "[smtp] port: must be an integer, not a string",
        ),
        (
            '[smtp]\nhost = "h"\nport = 70000\nfrom = "a@b"\nto = "c@d"\n',
            "[smtp] port: 70000 is out of range (1-65535)",
        ),
        (
            '[smtp]\nhost = "h"\nport = true\nfrom = "a@b"\nto = "c@d"\n',
            "[smtp] port: must be an integer, not a boolean",
        ),
        ('[smtp]\nhost = "h"\nfrom = "a@b"\n', "[smtp] to: missing; this table needs it"),
        ('[smtp]\nhost = "h"\nfrom = "a@b"\nto = []\n', "[smtp] to: must name at least one"),
        ('[smtp]\nhost = "h"\nfrom = "a@b"\nto = [1]\n', "[smtp] to: must be an array of strings"),
        (
            '[smtp]\nhost = "h"\nfrom = "a@b"\nto = "c@d"\ntls = "ssl"\n',
            '[smtp] tls: "ssl" is not one of "opportunistic", "starttls", "implicit", "none"',
        ),
        (
            '[smtp]\nhost = "h"\nfrom = "a@b"\nto = "c@d"\nuser = "u"\n',
            '[smtp] password_env: missing: user "u" needs a password',
        ),
        (
            '[smtp]\nhost = "h"\nfrom = "a@b"\nto = "c@d"\npassword_env = "OFFICE_SMTP"\n',
            "[smtp] password_env: given without user",
        ),
        (
            '[pop3]\nhost = "h"\nuser = "u"\npassword_env = "NOT_SET_ANYWHERE"\n',
            "[pop3] password_env: the environment variable NOT_SET_ANYWHERE is not set",
        ),
        (
            '[pop3]\nhost = "h"\nuser = "u"\npassword_env = "EMPTY"\n',
            "[pop3] password_env: the environment variable EMPTY is empty",
        ),
        (
            '[pop3]\nhost = "h"\nuser = "u"\npassword_env = "OFFICE_POP3"\nauth = "gssapi"\n',
            '[pop3] auth: "gssapi" is not one of',
        ),
        (
            '[pop3]\nhost = "127.0.0.1"\nuser = "u"\npassword_env = "OFFICE_POP3"\ncafile = "x"\n',
            '[pop3] tls: missing: on loopback the default is no TLS; set tls = "stls"',
        ),
        (
            '[pop3]\nhost = "h"\nuser = "u"\npassword_env = "OFFICE_POP3"\nmax_messages = 0\n',
            "[pop3] max_messages: 0 is out of range (1 or more)",
        ),
        (
            '[ftp]\nhost = "h"\ndownload = "a"\ntls = "none"\ncafile = "ca.pem"\n',
            '[ftp] cafile: tls is "none", so no TLS file is used',
        ),
        (
            '[ftp]\nhost = "h"\ndownload = "a"\ntls = "explicit"\nkey = "k.pem"\n',
            "[ftp] key: given without cert",
        ),
        ('[ftp]\nhost = "h"\n', "[ftp] download: missing: name the files to download or to upload"),
        (
            '[ftp]\nhost = "h"\ndownload = ["a/x.bin", "b/x.bin"]\n',
            '[ftp] download: "a/x.bin" and "b/x.bin" would both be saved as x.bin',
        ),
        ('[ftp]\nhost = "h"\nupload = "nowhere.bin"\n', "[ftp] upload: "),
        ('[ftp]\nhost = "ftp://h"\ndownload = "a"\n', '[ftp] host: "ftp://h" is a URL'),
        (
            '[ftp]\nhost = "h"\ndownload = "a"\nmode = "pasv"\n',
            '[ftp] mode: "pasv" is not one of "passive", "active"',
        ),
        (
            '[ftp]\nhost = "h"\ndownload = "a"\ntimeout = 0\n',
            "[ftp] timeout: must be more than 0 seconds, not 0",
        ),
        ('[ftp]\nhost = "h"\ndownload = "a\\r\\nDELE x"\n', "[ftp] download: "),
        (
            '[ftp]\nhost = "h"\nuser = "bob"\ndownload = "a"\n',
            '[ftp] password_env: missing: user "bob" needs a password',
        ),
        ('[http]\nhost = "h"\n', '[http] host: give the server as url = "https://host:port/"'),
        ('[http]\nurl = "ftp://h/"\n', '[http] url: "ftp://h/" is not an http:// or https:// URL'),
        (
            '[http]\nurl = "http://h/"\ncafile = "ca.pem"\n',
            "[http] cafile: the url is http://, so no TLS file is used",
        ),
        (
            '[http]\nurl = "http://h/"\nproxy = "gopher://p:70"\n',
            '[http] proxy: "gopher://p:70" is not a proxy URL',
        ),
        ('[http]\nurl = "http://h/"\nuser = "u"\n', "[http] password_env: missing"),
        ("[imap]\nhost = 'h'\n", "[imap]: unknown table; the office knows [smtp]"),
        ("[pop]\nhost = 'h'\n", "[pop]: unknown table (did you mean [pop3]?)"),
        ('host = "h"\n', ": host = ... outside any table"),
        ('smtp = "h"\n', ": smtp must be a table"),
        ("", ": names no server; add at least one of the tables"),
        ("[smtp\n", ": not valid TOML (Expected ']'"),
    ],
)
def test_each_wrong_setting_is_one_line_naming_file_table_and_key(
    tmp_path: Path, text: str, expected: str
) -> None:
    """Unknown keys and tables, wrong types and values, a password in the file, missing
    environment variables, TLS files that would go unused: each refused by name."""
    path = write(tmp_path, text)
    message = refused(path, {**ENV, "EMPTY": ""})
    assert message.startswith(str(path)), message
    assert expected in message, message


@pytest.mark.parametrize("key", ["cafile", "cert"])
def test_a_missing_or_unreadable_tls_file_is_named_by_its_key(
    tmp_path: Path, ca: trustme.CA, key: str
) -> None:
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    base = '[ftp]\nhost = "h"\ndownload = "a"\ntls = "explicit"\ncafile = "ca.pem"\n'
    if key == "cafile":
        base = base.replace('"ca.pem"', '"missing.pem"')
    else:
        base += 'cert = "missing.pem"\n'
    message = refused(write(tmp_path, base))
    assert (
        message
        == f"{tmp_path / 'office.toml'} [ftp] {key}: {tmp_path / 'missing.pem'}: no such file"
    )
    if os.geteuid() == 0:
        return  # root reads any file: no permission check to make
    (tmp_path / "missing.pem").write_text("x")
    (tmp_path / "missing.pem").chmod(0)
    assert f"[ftp] {key}: {tmp_path / 'missing.pem'}: not readable" in refused(
        tmp_path / "office.toml"
    )


def test_a_ca_file_that_is_not_a_certificate_is_named(tmp_path: Path, ca: trustme.CA) -> None:
    (tmp_path / "garbage.pem").write_text("not a certificate\n")
    path = write(tmp_path, '[http]\nurl = "https://h/"\ncafile = "garbage.pem"\n')
    message = refused(path)
    assert message.startswith(f"{path} [http] cafile: not a PEM CA certificate"), message
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    path.write_text('[http]\nurl = "https://h/"\ncafile = "ca.pem"\ncert = "ca.pem"\n')
    assert f"{path} [http] cert: not a PEM certificate and its key" in refused(path)


def test_a_missing_or_directory_config_file(tmp_path: Path) -> None:
    assert refused(tmp_path / "none.toml") == f"--config {tmp_path / 'none.toml'}: no such file"
    assert refused(tmp_path) == f"--config {tmp_path}: a directory, not a file"
    (tmp_path / "latin1.toml").write_bytes(b'[http]\nurl = "http://h/\xe9"\n')
    assert "not valid TOML" in refused(tmp_path / "latin1.toml")


def run_office(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "asyncnet.demos.office", "--plain", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={**os.environ, **(env or {})},
    )


def test_the_command_prints_the_refusal_as_one_line_and_exits_1(tmp_path: Path) -> None:
    """What a user sees: the file, the table, the key; exit 1; no traceback, no server."""
    path = write(tmp_path, '[pop3]\nhost = "127.0.0.1"\nuser = "alice"\npassword = "x"\n')
    done = run_office("--config", str(path))
    assert done.returncode == 1, done.stderr
    assert done.stdout == ""  # nothing started
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(
        f"python -m asyncnet.demos.office: error: {path} [pop3] password: passwords never go"
    ), done.stderr


def test_embedded_only_options_are_refused_with_config(tmp_path: Path) -> None:
    path = write(tmp_path, '[http]\nurl = "http://127.0.0.1:9/"\n')
    done = run_office("--config", str(path), "--size-kib", "4")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1, done.stderr
    assert "--size-kib shapes the embedded servers" in done.stderr


def test_help_names_config_and_loads_no_client_library() -> None:
    code = (
        "import sys\n"
        "from asyncnet.demos import office\n"
        "try:\n    office.main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('aiohttp', 'aioftp', 'aiosmtplib', 'aiosmtpd') "
        "if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert "--config FILE" in done.stdout
    assert done.stdout.rstrip().endswith("[]"), done.stdout
