"""The documentation stays true: its examples run, and docs/domain.md names the whole domain.

- docs/examples/*.py are the tested sources of the examples; a Markdown page shows one in a
  ``python`` block right after ``<!-- include: docs/examples/<file>.py -->``, and that block
  must equal the file.
- Every other ``python`` block of a page runs, in order, in one namespace per page.
- docs/domain.md mentions every event, command, query, error, enum and value type (a name counts
  when it is in backticks), and each event's and command's section names all its fields.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import re
import subprocess
import sys
from enum import Enum
from pathlib import Path

import attrs
import pytest
from eventsourcing.domain import Aggregate

from acctdomain import errors
from acctdomain.application import AccountService
from acctdomain.application.read_side import ReadSide
from acctdomain.domain import ENUM_TYPES, VALUE_TYPES, AccountState
from acctdomain.domain.events import ACCOUNT_EVENT_TYPES, AccountEvent

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
EXAMPLE = DOCS / "examples" / "getting_started.py"
GETTING_STARTED = DOCS / "getting-started.md"
DOMAIN = DOCS / "domain.md"
PLUGINS = DOCS / "plugins.md"
AUDIT = DOCS / "audit.md"
HISTORY = DOCS / "history.md"
KPIS = DOCS / "kpis.md"
WORKDAY = DOCS / "workday.md"

# A fenced python block, optionally preceded by an include marker naming its tested source.
PYTHON_BLOCK = re.compile(
    r"(?:^<!-- include: (?P<include>\S+) -->\n)?^```python\n(?P<code>.*?)^```$", re.S | re.M
)
HEADING = re.compile(r"^#+ ", re.M)

# AccountService methods that wire persistence into eventsourcing, not commands or queries.
PERSISTENCE_WIRING = frozenset(
    {"construct_mapper", "construct_transcoder", "register_transcodings"}
)


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def service_methods() -> list[str]:
    """Public commands and queries defined by AccountService and its read side (not those
    inherited from eventsourcing's Application)."""
    return sorted(
        name
        for owner in (AccountService, ReadSide)
        for name, value in vars(owner).items()
        if inspect.isfunction(value) and not name.startswith("_") and name not in PERSISTENCE_WIRING
    )


def mentioned(name: str, text: str) -> bool:
    """True if ``name`` appears in backticks: `name`, `name(...)`, `name` (version 2)..."""
    return re.search(rf"`{re.escape(name)}\b[^`\n]*`", text) is not None


def section(name: str, text: str) -> str:
    """The text under the heading that names ``name`` in backticks, up to the next heading."""
    match = re.search(rf"^#+ [^\n]*`{re.escape(name)}`[^\n]*\n", text, re.M)
    assert match is not None, f"docs/domain.md has no heading for `{name}`"
    following = HEADING.search(text, match.end())
    return text[match.end() : following.start() if following else len(text)]


# --- (a) the example runs ----------------------------------------------------------------------


@pytest.mark.parametrize("with_path", [True, False], ids=["given-path", "temporary-directory"])
def test_getting_started_example_runs_and_reports_the_account(
    tmp_path: Path, with_path: bool
) -> None:
    database = tmp_path / "book.db"
    arguments = [str(database)] if with_path else []
    completed = subprocess.run(
        [sys.executable, str(EXAMPLE), *arguments],
        cwd=tmp_path,
        env={**os.environ, "TMPDIR": str(tmp_path)},  # the no-argument run writes under tmp_path
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.splitlines() == [
        "Acme Logistics: active, ARR 48000.00 EUR, version 6",
        "issues: 1 raised, 0 open; latest NPS 9",
        "refused with CurrencyMismatch on 'added_arr': amount is in USD, "
        "the account's contract currency is EUR",
    ]
    if with_path:
        assert database.is_file()
    else:
        assert list(tmp_path.glob("*/book.db")), "expected the events in a temporary directory"


# --- (b) the page shows the tested file ----------------------------------------------------------


def included_blocks(page: Path) -> list[tuple[str, str]]:
    return [
        (match["include"], match["code"])
        for match in PYTHON_BLOCK.finditer(read(page))
        if match["include"]
    ]


def test_getting_started_page_shows_the_tested_example_verbatim() -> None:
    blocks = dict(included_blocks(GETTING_STARTED))
    assert "docs/examples/getting_started.py" in blocks, "the include marker is missing"
    assert blocks["docs/examples/getting_started.py"] == read(EXAMPLE)


@pytest.mark.parametrize("page", sorted(DOCS.glob("*.md")), ids=lambda p: p.name)
def test_every_included_block_equals_its_file(page: Path) -> None:
    for path, code in included_blocks(page):
        assert code == read(ROOT / path), f"{page.name}: the block of {path} has drifted"


# --- (c) docs/domain.md is complete --------------------------------------------------------------

EVENT_NAMES = [event.__name__ for event in ACCOUNT_EVENT_TYPES]
ERROR_NAMES = list(errors.__all__)
ENUM_NAMES = [enum.__name__ for enum in ENUM_TYPES]
VALUE_NAMES = [value.__name__ for value in VALUE_TYPES] + [AccountState.__name__]


def test_the_service_has_commands_and_queries_to_document() -> None:
    methods = service_methods()
    assert {"open_account", "win_opportunity", "get_account", "history"} <= set(methods)
    assert not PERSISTENCE_WIRING & set(methods)


@pytest.mark.parametrize(
    ("kind", "name"),
    [("event", name) for name in EVENT_NAMES]
    + [("service method", name) for name in service_methods()]
    + [("error", name) for name in ERROR_NAMES]
    + [("enum", name) for name in ENUM_NAMES]
    + [("value type", name) for name in VALUE_NAMES],
)
def test_domain_reference_mentions(kind: str, name: str) -> None:
    assert mentioned(name, read(DOMAIN)), f"docs/domain.md does not mention the {kind} `{name}`"


@pytest.mark.parametrize("enum", ENUM_TYPES, ids=lambda e: e.__name__)
def test_domain_reference_lists_every_enum_member(enum: type[Enum]) -> None:
    text = read(DOMAIN)
    row = next(
        (line for line in text.splitlines() if line.startswith(f"| `{enum.__name__}` |")), ""
    )
    assert row, f"docs/domain.md has no table row for `{enum.__name__}`"
    for member in enum:
        assert f"`{member.name}`" in row, f"`{enum.__name__}.{member.name}` is not listed"


# Fields every event has, documented once for all of them.
COMMON_EVENT_FIELDS = frozenset(
    field.name for base in (AccountEvent, Aggregate.Created) for field in dataclasses.fields(base)
)


@pytest.mark.parametrize("event", ACCOUNT_EVENT_TYPES, ids=lambda e: e.__name__)
def test_domain_reference_documents_every_event_field(event: type[AccountEvent]) -> None:
    text = section(event.__name__, read(DOMAIN))
    for field in dataclasses.fields(event):
        if field.name not in COMMON_EVENT_FIELDS:
            assert f"`{field.name}`" in text, f"`{event.__name__}.{field.name}` is not documented"


@pytest.mark.parametrize("event", ACCOUNT_EVENT_TYPES, ids=lambda e: e.__name__)
def test_domain_reference_states_each_event_version(event: type[AccountEvent]) -> None:
    version = getattr(event, "class_version", 1)
    heading = f"### `{event.__name__}`" + (f" (version {version})" if version > 1 else "")
    assert re.search(rf"^{re.escape(heading)}$", read(DOMAIN), re.M), f"expected {heading!r}"


@pytest.mark.parametrize("method", service_methods())
def test_domain_reference_documents_every_command_argument(method: str) -> None:
    text = section(method, read(DOMAIN))
    parameters = inspect.signature(getattr(AccountService, method)).parameters.values()
    for parameter in parameters:
        if parameter.name != "self" and parameter.kind is not parameter.VAR_KEYWORD:
            assert re.search(rf"\b{parameter.name}\b", text), f"{method}({parameter.name}) missing"


@pytest.mark.parametrize("record", [*VALUE_TYPES, AccountState], ids=lambda r: r.__name__)
def test_domain_reference_documents_every_record_field(record: type) -> None:
    text = section(record.__name__, read(DOMAIN))
    for field in attrs.fields(record):
        assert f"`{field.name}`" in text, f"`{record.__name__}.{field.name}` is not documented"


# --- (d) the other python blocks run -------------------------------------------------------------


# cli.md is checked by the CLI tests (its examples are console sessions, run with CliRunner).
RUNNABLE_PAGES = sorted(page for page in DOCS.glob("*.md") if page.name != "cli.md")


def test_the_pages_with_python_examples_include_the_core_ones() -> None:
    assert {GETTING_STARTED, DOMAIN, PLUGINS, AUDIT, HISTORY, KPIS, WORKDAY} <= set(RUNNABLE_PAGES)


@pytest.mark.parametrize("page", RUNNABLE_PAGES, ids=lambda p: p.name)
def test_python_blocks_of_a_page_run_in_order(page: Path) -> None:
    namespace: dict[str, object] = {"__name__": f"docs_{page.stem.replace('-', '_')}"}
    blocks = [m for m in PYTHON_BLOCK.finditer(read(page)) if not m["include"]]
    assert blocks, f"{page.name} has no runnable python block"
    for number, block in enumerate(blocks, start=1):
        # dont_inherit: run as a reader would, without this module's __future__ imports.
        name = f"{page.name} (python block {number})"
        code = compile(block["code"], name, "exec", dont_inherit=True)
        exec(code, namespace)
