"""The docs: a page per concept, every page reachable, one error tree, a clean build
whose API reference covers every public name."""

from __future__ import annotations

import builtins
import importlib
import importlib.util
import inspect
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from asyncnet.errors import AsyncNetError
from tests.helpers import ROOT

DOCS = ROOT / "docs"

# The concept pages: prose and examples, then a link to their API reference.
PAGES = ["handlers", "servers", "framing", "clients", "creosote", "testing", "errors"]

# The public modules; every other module of the package starts with "_".
PUBLIC_MODULES = [
    "asyncnet",
    "asyncnet.errors",
    "asyncnet.servers",
    "asyncnet.clients",
    "asyncnet.protocols",
    "asyncnet.mail",
    "asyncnet.ftp",
    "asyncnet.web",
    "asyncnet.creosote",
    "asyncnet.testing",
    "asyncnet.text",
    "asyncnet.dns",
    "asyncnet.byteorder",
    "asyncnet.chat",
    "asyncnet.pytest_plugin",
]

TREE_LINE = re.compile(
    r"^(?P<indent>(?:[│ ]   )*)(?P<branch>[├└]── )?(?P<name>\w+)(?: \((?P<also>[^)]*)\))?$"
)


def page(name: str) -> str:
    return (DOCS / f"{name}.md").read_text(encoding="utf-8")


def all_pages() -> list[Path]:
    return sorted(DOCS.rglob("*.md"))


def public_modules() -> list[ModuleType]:
    return [importlib.import_module(name) for name in PUBLIC_MODULES]


def public_names() -> list[tuple[str, str, object]]:
    """(module, name, object) for every name in a public module's ``__all__``."""
    return [
        (module.__name__, name, getattr(module, name))
        for module in public_modules()
        for name in module.__all__
    ]


@pytest.mark.parametrize("name", PAGES)
def test_each_concept_has_a_page_with_its_reference(name: str) -> None:
    """Prose and examples first, then a link to the API reference generated from the
    docstrings."""
    text = page(name)
    assert text.startswith("# ")
    reference = text.split("\n## Reference\n", 1)[1]
    assert "](api/" in reference


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
    """Each feature a first-hour reader could not find has its place."""
    assert needle in page(name)


@pytest.mark.parametrize(
    ("name", "heading"),
    [
        ("web", "## The client"),
        ("web", "## Static files"),
        ("web", "## The server"),
        ("web", "## CGI"),
        ("web", "## Forms"),
        ("web", "## Debug pages"),
        ("ftp", "## The client: ftplib's verbs"),
        ("ftp", "## Downloads: verified, resumable"),
        ("ftp", "## The embedded server"),
        ("ftp", "## Errors"),
        ("lines", "## Commands: `CommandHandler`"),
        ("running", "## Lifecycle"),
        ("testing", "## Testing a handler in memory"),
        ("robustness", "## Hostile peers"),
    ],
)
def test_pages_moved_out_of_the_readme_have_their_sections(name: str, heading: str) -> None:
    """What the README used to say lives in a page of its own, written out."""
    assert f"\n{heading}\n" in page(name)


@pytest.mark.parametrize("name", ["web", "ftp", "mail", "errors", "lines"])
def test_written_out_pages_have_a_runnable_example(name: str) -> None:
    """The pages that were stubs each carry an example that tests/test_readme.py runs."""
    assert re.search(r"<!-- readme-test: \S+\.py run -->", page(name))


def test_index_lists_every_page() -> None:
    """docs/index.md links every page of docs/, the demos' index and the API's index."""
    index = page("index")
    for path in sorted(DOCS.glob("*.md")):
        if path.name != "index.md":
            assert f"]({path.name})" in index, path.name
    assert "](demos/index.md)" in index
    assert "](api/index.md)" in index
    demos = page("demos/index")
    for path in sorted((DOCS / "demos").glob("*.md")):
        if path.name != "index.md":
            assert f"]({path.name})" in demos, path.name
    api = page("api/index")
    for path in sorted((DOCS / "api").glob("*.md")):
        if path.name != "index.md":
            assert f"]({path.name})" in api, path.name


def test_navigation_has_every_page() -> None:
    """mkdocs.yml's nav names each page once (a page left out of it is only an INFO)."""
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    nav = re.findall(r"^\s+- (?:[^:\n]+: )?(\S+\.md)$", config, re.MULTILINE)
    pages = [path.relative_to(DOCS).as_posix() for path in all_pages()]
    assert sorted(nav) == sorted(pages)


def test_each_public_module_has_its_api_page() -> None:
    """One reference page per public module, by its package-level path."""
    directives = {
        match
        for path in sorted((DOCS / "api").glob("*.md"))
        for match in re.findall(r"^::: (\S+)$", path.read_text(encoding="utf-8"), re.MULTILINE)
    }
    assert directives == set(PUBLIC_MODULES)


def test_public_names_have_a_docstring() -> None:
    """The reference shows a one-line summary for every public class and function."""
    missing = [
        f"{module}.{name}"
        for module, name, obj in public_names()
        if (inspect.isclass(obj) or inspect.isfunction(obj)) and not (obj.__doc__ or "").strip()
    ]
    assert not missing


def test_docs_and_readme_cite_no_work_items() -> None:
    """Readers cannot look up an issue or item number: the docs say what, not which ticket."""
    pattern = re.compile(r"\b(?:issues?|items?) #?\d+", re.IGNORECASE)
    for path in [ROOT / "README.md", *all_pages()]:
        found = pattern.findall(path.read_text(encoding="utf-8"))
        assert not found, (path.name, found)


def test_examples_import_only_public_modules() -> None:
    """The code in the README and docs imports public modules, never a ``_private`` one."""
    code = re.compile(r"```python\n(.*?)```", re.DOTALL)
    imports = re.compile(r"^\s*(?:from (asyncnet\S*) import|import (asyncnet\S*))", re.MULTILINE)
    public = set(PUBLIC_MODULES)
    for path in [ROOT / "README.md", *all_pages()]:
        for block in code.findall(path.read_text(encoding="utf-8")):
            for found in imports.findall(block):
                module = found[0] or found[1]
                assert module in public or module.startswith("asyncnet.demos."), (path, module)


def test_benchmarks_page_shows_the_latest_run_only() -> None:
    """One table per measurement, the commands of the benchmarks/ folder, no history."""
    text = page("benchmarks")
    assert text.count("| server | req/s @1 |") == 1
    assert text.count("| server | quiet p50 ms |") == 1
    assert text.count("| workload | RTT ms | clients |") == 1
    assert "make bench" in text
    assert "python -m benchmarks" in text
    assert "asyncnet.bench" not in text
    assert "the run before" not in text


def error_tree() -> dict[str, tuple[str | None, list[str]]]:
    """docs/errors.md's tree: {class name: (parent name, other bases in parentheses)}."""
    text = page("errors")
    block = text.split("\n## The tree\n", 1)[1].split("```text\n", 1)[1].split("```", 1)[0]
    tree: dict[str, tuple[str | None, list[str]]] = {}
    stack: list[str] = []
    for line in block.splitlines():
        match = TREE_LINE.match(line)
        assert match, f"not a tree line: {line!r}"
        depth = len(match["indent"]) // 4 + (1 if match["branch"] else 0)
        del stack[depth:]
        assert len(stack) == depth, f"a line without its parent: {line!r}"
        name = match["name"]
        assert name not in tree, f"{name} appears twice in the tree"
        also = [part.strip() for part in (match["also"] or "").split(",") if part.strip()]
        tree[name] = (stack[-1] if stack else None, also)
        stack.append(name)
    return tree


def public_class(name: str) -> type:
    """A class by name: from a public module, or a built-in."""
    for module in public_modules():
        if name in module.__all__ and inspect.isclass(getattr(module, name)):
            public: type = getattr(module, name)
            return public
    builtin = getattr(builtins, name, None)
    assert inspect.isclass(builtin), f"{name}: neither a public class nor a built-in"
    return builtin


def test_error_tree_is_the_code_tree() -> None:
    """The one tree on docs/errors.md is the code's: every public exception appears once,
    under one of its bases, with its other bases in parentheses, and has a table row."""
    tree = error_tree()
    errors = {obj for _, _, obj in public_names() if inspect.isclass(obj)}
    errors = {cls for cls in errors if issubclass(cls, AsyncNetError)}
    shown = {public_class(name) for name in tree}
    assert {cls.__name__ for cls in errors - shown} == set(), "missing from the tree"
    assert {cls.__name__ for cls in shown - errors} == set(), "not public errors"
    text = page("errors")
    for name, (parent, also) in tree.items():
        cls = public_class(name)
        bases = {base.__name__ for base in cls.__bases__}
        if parent is None:
            assert cls is AsyncNetError
            continue
        assert parent in bases, f"{name} is not a {parent}"
        assert bases == {parent, *also}, f"{name} derives from {sorted(bases)}"
        assert f"| `{name}` |" in text, f"{name} has no row in the tables"


def test_the_error_tree_is_drawn_once() -> None:
    """The README and the other pages link to docs/errors.md instead of repeating it."""
    drawings = [
        path.name
        for path in [ROOT / "README.md", *all_pages()]
        if "AsyncNetError\n├──" in path.read_text(encoding="utf-8")
    ]
    assert drawings == ["errors.md"]


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("mkdocs") is None, reason="the docs extra is not installed"
)
def test_docs_build_without_warnings(tmp_path: Path) -> None:
    """``make docs``' build: mkdocs --strict fails on any warning (a broken reference...),
    and the API reference has an entry for every public name."""
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

    anchors = set()
    for html in (tmp_path / "api").glob("*.html"):
        anchors |= set(re.findall(r'id="(asyncnet[\w.]*)"', html.read_text(encoding="utf-8")))
    names = public_names()
    documented = {id(obj) for module, name, obj in names if f"{module}.{name}" in anchors}
    # A re-exported name counts where its own module documents it (asyncnet.LineHandler
    # is asyncnet.servers.LineHandler).
    missing = [
        f"{module}.{name}"
        for module, name, obj in names
        if f"{module}.{name}" not in anchors and id(obj) not in documented
    ]
    assert not missing, "public names without an API-reference entry"
