"""`acctdomain audit`: verify, export, import, checkpoint make/check and keys generate on real
SQLite files, with tampered stores, files and checkpoints, and every refusal."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner, Result

from acctdomain import AccountService
from acctdomain.audit import GENESIS, link, verify
from acctdomain.cli import build_app
from acctdomain.cli_audit import audit_app
from acctdomain.plugins import PluginHost

runner = CliRunner()

VERIFY_KEYS = {"ok", "checked", "total", "head_position", "head_hash", "problem"}
CHECKPOINT_KEYS = {"position", "head_hash", "recorded_at", "signed_at", "key_id", "scheme"}


def host() -> PluginHost:
    return PluginHost(entry_points=False)


def write_book(path: str, names: tuple[str, ...] = ("Acme", "Globex", "Initech")) -> None:
    service = AccountService(path, plugins=host())
    try:
        for name in names:
            service.open_account(
                name=name,
                segment="enterprise",
                industry="logistics",
                currency="EUR",
                manager="amy",
                manager_type="strategic",
                actor="amy",
            )
    finally:
        service.close()


@pytest.fixture
def db(tmp_path: Path) -> str:
    path = str(tmp_path / "book.db")
    write_book(path)
    return path


def audit(*args: str, env: dict[str, str] | None = None) -> Result:
    return runner.invoke(build_app(host()), ["audit", *args], env=env)


def as_json(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def assert_one_line_error(result: Result, code: int, starts: str, stdout: bool = False) -> None:
    assert result.exit_code == code, result.output
    if not stdout:
        assert result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"error: {starts}"), result.stderr
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def tamper(path: str) -> None:
    """Edit the second event behind the application's back."""
    with sqlite3.connect(path) as connection:
        connection.execute(
            "UPDATE stored_events SET state = replace(state, 'Globex', 'Glob3x') WHERE rowid = 2"
        )
    connection.close()


def rewrite_history(path: str) -> None:
    """Change who recorded the first event and recompute the whole chain: verify passes."""
    with sqlite3.connect(path) as connection:
        (state,) = connection.execute("SELECT state FROM stored_events WHERE rowid = 1").fetchone()
        state = state.replace(b'"actor":"amy"', b'"actor":"eve"')
        connection.execute("UPDATE stored_events SET state = ? WHERE rowid = 1", (state,))
        previous = GENESIS
        rows = connection.execute(
            "SELECT rowid, originator_id, originator_version, topic, state FROM stored_events "
            "ORDER BY rowid"
        ).fetchall()
        for rowid, originator_id, version, topic, body in rows:
            previous = link(previous, rowid, originator_id.encode(), version, topic.encode(), body)
            connection.execute(
                "UPDATE stored_events_chain SET hash = ? WHERE notification_id = ?",
                (previous, rowid),
            )
    connection.close()


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    folder = tmp_path / "keys"
    result = audit("keys", "generate", str(folder))
    assert result.exit_code == 0, result.output
    return folder / "audit.pem", folder / "audit.pub"


# --- verify ---------------------------------------------------------------------------------------


def test_verify_a_sound_store(db: str) -> None:
    result = audit("verify", "--db", db)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"ok: 3 events of {db} checked")
    assert "at position 3" in result.stdout
    assert result.stderr == ""


def test_verify_json_has_stable_keys(db: str) -> None:
    report = as_json(audit("verify", "--db", db, "--json"))
    assert set(report) == {"db", *VERIFY_KEYS}
    assert report["ok"] is True
    assert report["problem"] is None
    assert (report["checked"], report["total"], report["head_position"]) == (3, 3, 3)
    assert report["head_hash"] == verify(db).head_hex


def test_verify_a_tampered_store_names_the_problem_and_exits_1(db: str) -> None:
    tamper(db)
    result = audit("verify", "--db", db)
    assert result.stdout == f"broken: modified at position 2 in {db}\n"
    assert_one_line_error(result, 1, "the chain is broken at position 2: modified", stdout=True)
    report = json.loads(audit("verify", "--db", db, "--json").stdout)
    assert report["ok"] is False
    assert set(report["problem"]) == {"position", "kind", "detail"}
    assert (report["problem"]["position"], report["problem"]["kind"]) == (2, "modified")
    assert (report["checked"], report["head_position"]) == (1, 1)


def test_verify_refuses_a_missing_store_and_memory(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.db")
    assert_one_line_error(audit("verify", "--db", missing), 2, "--db: there is no SQLite store")
    assert_one_line_error(audit("verify", "--db", "memory:"), 2, "--db: an in-memory store")
    assert_one_line_error(audit("verify", "--db", "mysql://x"), 2, "--db: ")


# --- export, import -------------------------------------------------------------------------------


def test_export_then_import_gives_the_same_head(db: str, tmp_path: Path) -> None:
    file = tmp_path / "book.jsonl"
    exported = as_json(audit("export", str(file), "--db", db, "--json"))
    assert set(exported) == {"db", "file", "events", "head_position", "head_hash", "keys"}
    assert (exported["events"], exported["head_position"]) == (3, 3)
    assert len(file.read_text(encoding="utf-8").splitlines()) == 5
    copy = str(tmp_path / "copy.db")
    imported = as_json(audit("import", str(file), "--db", copy, "--json"))
    assert set(imported) == {
        "db", "file", "events", "head_position", "head_hash", "verification", "keys",
    }  # fmt: skip
    assert set(imported["verification"]) == VERIFY_KEYS
    assert imported["head_hash"] == exported["head_hash"] == verify(copy).head_hex
    assert imported["verification"]["ok"] is True


def test_personal_data_travels_only_with_the_keys_file(tmp_path: Path) -> None:
    db = str(tmp_path / "book.db")
    with AccountService(db, plugins=host()) as service:
        acme = service.open_account(
            name="Acme", segment="smb", industry="retail", currency="EUR", manager="amy",
            manager_type="sales", actor="amy",
        ).account_id  # fmt: skip
        service.add_stakeholder(
            acme, name="Ada Lovelace", title="CFO", role="champion", sentiment="positive",
            actor="amy",
        )  # fmt: skip
    file, key_file = tmp_path / "book.jsonl", tmp_path / "book.keys"
    exported = as_json(audit("export", str(file), "--keys", str(key_file), "--db", db, "--json"))
    assert exported["keys"] == str(key_file)
    assert "Ada Lovelace" not in file.read_text(encoding="utf-8")
    names = {}
    for copy, extra in (("with.db", ["--keys", str(key_file)]), ("without.db", [])):
        target = str(tmp_path / copy)
        as_json(audit("import", str(file), *extra, "--db", target, "--json"))
        with AccountService(target, plugins=host()) as service:
            [person] = service.get_account(acme).stakeholders
            names[copy] = person.name
    assert names == {"with.db": "Ada Lovelace", "without.db": "[erased]"}
    assert_one_line_error(
        audit("export", str(tmp_path / "again.jsonl"), "--keys", str(key_file), "--db", db),
        2,
        f"--keys {key_file}: exists already",
    )
    bad = tmp_path / "bad.keys"
    bad.write_text("{}", encoding="utf-8")
    assert_one_line_error(
        audit("import", str(file), "--keys", str(bad), "--db", str(tmp_path / "bad.db")),
        2,
        f"--keys {bad}: not an",
    )
    assert_one_line_error(
        audit("import", str(file), "--keys", str(tmp_path / "none.keys"), "--db", db),
        2,
        "--keys",
    )


def test_export_and_import_in_text(db: str, tmp_path: Path) -> None:
    file = tmp_path / "book.jsonl"
    result = audit("export", str(file), "--db", db)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"exported 3 events of {db} to {file}")
    result = audit("import", str(file), "--db", str(tmp_path / "copy.db"))
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("imported 3 events from")
    assert "verified ok" in result.stdout


def test_export_refuses_an_existing_file_and_a_broken_chain(db: str, tmp_path: Path) -> None:
    file = tmp_path / "book.jsonl"
    file.write_text("keep me", encoding="utf-8")
    assert_one_line_error(audit("export", str(file), "--db", db), 2, "FILE ")
    assert file.read_text(encoding="utf-8") == "keep me"
    nowhere = tmp_path / "no" / "book.jsonl"
    assert_one_line_error(audit("export", str(nowhere), "--db", db), 2, "FILE ")
    tamper(db)
    fresh = tmp_path / "fresh.jsonl"
    assert_one_line_error(audit("export", str(fresh), "--db", db), 1, f"{db}: ")
    assert not fresh.exists()


def test_import_refuses_a_missing_file_a_full_store_and_a_forged_line(
    db: str, tmp_path: Path
) -> None:
    missing = tmp_path / "missing.jsonl"
    assert_one_line_error(audit("import", str(missing), "--db", db), 2, "FILE ")
    file = tmp_path / "book.jsonl"
    assert audit("export", str(file), "--db", db).exit_code == 0
    assert_one_line_error(audit("import", str(file), "--db", db), 2, f"--db {db}: ")
    lines = file.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[2] = lines[2].replace("Globex", "Glob3x")
    forged = tmp_path / "forged.jsonl"
    forged.write_text("".join(lines), encoding="utf-8")
    target = str(tmp_path / "target.db")
    assert_one_line_error(audit("import", str(forged), "--db", target), 1, f"{forged}: line 3")
    assert verify(target).total == 0
    assert_one_line_error(audit("import", str(file), "--db", "memory:"), 2, "--db: ")
    nowhere = str(tmp_path / "no" / "copy.db")
    assert_one_line_error(audit("import", str(file), "--db", nowhere), 2, f"--db {nowhere}")


# --- checkpoints, keys ----------------------------------------------------------------------------


def test_keys_generate_writes_a_pair_and_never_overwrites(tmp_path: Path) -> None:
    folder = tmp_path / "keys"
    report = as_json(audit("keys", "generate", str(folder), "--name", "signer", "--json"))
    assert set(report) == {"private_key", "public_key", "key_id", "encrypted"}
    assert report["private_key"] == str(folder / "signer.pem")
    assert report["encrypted"] is False
    assert len(report["key_id"]) == 64
    assert (folder / "signer.pem").stat().st_mode & 0o077 == 0
    assert b"PUBLIC KEY" in (folder / "signer.pub").read_bytes()
    again = audit("keys", "generate", str(folder), "--name", "signer")
    assert_one_line_error(again, 2, f"{folder / 'signer.pem'}: exists already")
    text = audit("keys", "generate", str(folder))
    assert text.exit_code == 0
    assert text.stdout.startswith(f"wrote {folder / 'audit.pem'}")


def test_keys_generate_refusals(tmp_path: Path) -> None:
    file = tmp_path / "file"
    file.write_text("", encoding="utf-8")
    assert_one_line_error(audit("keys", "generate", str(file)), 2, f"DIR {file}: not a directory")
    assert_one_line_error(audit("keys", "generate", str(tmp_path), "--name", "../x"), 2, "--name: ")
    assert_one_line_error(
        audit("keys", "generate", str(tmp_path), "--passphrase-env", "NO_SUCH_VARIABLE_HERE"),
        2,
        "--passphrase-env: the environment variable NO_SUCH_VARIABLE_HERE is not set",
    )


def test_a_checkpoint_made_then_checked(db: str, tmp_path: Path, keys: tuple[Path, Path]) -> None:
    private, public = keys
    out = tmp_path / "checkpoint.json"
    made = as_json(audit("checkpoint", "make", "--key", str(private), "--out", str(out),
                         "--db", db, "--json"))  # fmt: skip
    assert set(made) == {"db", "file", *CHECKPOINT_KEYS}
    assert made["position"] == 3
    assert made["head_hash"] == verify(db).head_hex
    assert json.loads(out.read_text(encoding="ascii"))["position"] == 3
    write_more = AccountService(db, plugins=host())
    write_more.open_account(
        name="Umbrella", segment="smb", industry="retail", currency="EUR",
        manager="amy", manager_type="sales", actor="amy",
    )  # fmt: skip
    write_more.close()
    checked = as_json(audit("checkpoint", "check", str(out), "--public-key", str(public),
                            "--db", db, "--json"))  # fmt: skip
    assert set(checked) == {"db", "file", "ok", "reason", "detail", "checkpoint", "verification"}
    assert checked["ok"] is True
    assert checked["reason"] is None
    assert set(checked["checkpoint"]) == CHECKPOINT_KEYS
    assert checked["verification"]["head_position"] == 4
    text = audit("checkpoint", "check", str(out), "--public-key", str(public), "--db", db)
    assert text.exit_code == 0
    assert text.stdout.startswith("ok: the store extends the checkpoint")
    again = audit("checkpoint", "make", "--key", str(private), "--out", str(out), "--db", db)
    assert_one_line_error(again, 2, f"--out {out}: exists already")


def test_a_passphrase_comes_from_the_environment(db: str, tmp_path: Path) -> None:
    env = {"AUDIT_PASSPHRASE": "correct horse"}
    folder = tmp_path / "keys"
    made = audit("keys", "generate", str(folder), "--passphrase-env", "AUDIT_PASSPHRASE",
                 "--json", env=env)  # fmt: skip
    assert as_json(made)["encrypted"] is True
    key, out = str(folder / "audit.pem"), str(tmp_path / "c.json")
    assert_one_line_error(
        audit("checkpoint", "make", "--key", key, "--out", out, "--db", db),
        2,
        "--key: ",
    )
    wrong = {"AUDIT_PASSPHRASE": "wrong"}
    refused = audit("checkpoint", "make", "--key", key, "--passphrase-env", "AUDIT_PASSPHRASE",
                    "--out", out, "--db", db, env=wrong)  # fmt: skip
    assert_one_line_error(refused, 2, "--key: ")
    result = audit("checkpoint", "make", "--key", key, "--passphrase-env", "AUDIT_PASSPHRASE",
                   "--out", out, "--db", db, env=env)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"signed {db} at position 3")


def test_a_rewritten_history_fails_the_check(
    db: str, tmp_path: Path, keys: tuple[Path, Path]
) -> None:
    private, public = keys
    out = tmp_path / "checkpoint.json"
    assert (
        audit("checkpoint", "make", "--key", str(private), "--out", str(out), "--db", db).exit_code
        == 0
    )
    rewrite_history(db)
    assert audit("verify", "--db", db).exit_code == 0
    result = audit("checkpoint", "check", str(out), "--public-key", str(public), "--db", db)
    assert result.stdout == "failed: history rewritten\n"
    assert_one_line_error(result, 1, "history rewritten: ", stdout=True)
    report = json.loads(
        audit(
            "checkpoint", "check", str(out), "--public-key", str(public), "--db", db, "--json"
        ).stdout
    )
    assert (report["ok"], report["reason"], report["verification"]) == (
        False,
        "history rewritten",
        None,
    )


def test_a_tampered_checkpoint_or_another_key_fails_the_check(
    db: str, tmp_path: Path, keys: tuple[Path, Path]
) -> None:
    private, public = keys
    out = tmp_path / "checkpoint.json"
    assert (
        audit("checkpoint", "make", "--key", str(private), "--out", str(out), "--db", db).exit_code
        == 0
    )
    document = json.loads(out.read_text(encoding="ascii"))
    document["position"] = 1
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps(document), encoding="ascii")
    result = audit("checkpoint", "check", str(forged), "--public-key", str(public), "--db", db)
    assert_one_line_error(result, 1, f"{forged}: the signature does not verify")
    assert audit("keys", "generate", str(tmp_path / "other")).exit_code == 0
    stranger = str(tmp_path / "other" / "audit.pub")
    result = audit("checkpoint", "check", str(out), "--public-key", stranger, "--db", db)
    assert_one_line_error(result, 1, f"{out}: the checkpoint was signed by key")


def test_checkpoint_refusals(db: str, tmp_path: Path, keys: tuple[Path, Path]) -> None:
    private, public = keys
    out = str(tmp_path / "c.json")
    missing = str(tmp_path / "missing.pem")
    make = ("checkpoint", "make", "--out", out, "--db", db, "--key")
    assert_one_line_error(audit(*make, missing), 2, f"--key {missing}: no such file")
    assert_one_line_error(audit(*make, str(public)), 2, "--key: ")
    check = ("checkpoint", "check", "--db", db)
    assert_one_line_error(
        audit(*check, out, "--public-key", str(public)), 2, f"FILE {out}: no such file"
    )
    assert audit(*make, str(private)).exit_code == 0
    assert_one_line_error(
        audit(*check, out, "--public-key", missing), 2, f"--public-key {missing}: no such file"
    )
    assert_one_line_error(audit(*check, out, "--public-key", str(private)), 2, "--public-key: ")
    not_json = tmp_path / "not.json"
    not_json.write_text("{nope", encoding="ascii")
    assert_one_line_error(
        audit(*check, str(not_json), "--public-key", str(public)), 2, f"{not_json}: "
    )
    empty = str(tmp_path / "empty.db")
    AccountService(empty, plugins=host()).close()
    refused = audit("checkpoint", "make", "--key", str(private), "--out",
                    str(tmp_path / "e.json"), "--db", empty)  # fmt: skip
    assert_one_line_error(refused, 1, f"{empty}: the store holds no events")
    other = str(tmp_path / "other.db")
    write_book(other, ("Acme",))
    beyond = audit("checkpoint", "check", out, "--public-key", str(public), "--db", other)
    assert_one_line_error(beyond, 1, f"{out}: the checkpoint was made at position 3")


def test_making_a_checkpoint_of_a_broken_chain_is_refused(
    db: str, tmp_path: Path, keys: tuple[Path, Path]
) -> None:
    tamper(db)
    out = tmp_path / "c.json"
    result = audit("checkpoint", "make", "--key", str(keys[0]), "--out", str(out), "--db", db)
    assert_one_line_error(result, 1, f"{db}: the chain is broken at position 2")
    assert not out.exists()


def test_a_checkpoint_of_a_store_broken_after_it_fails(
    db: str, tmp_path: Path, keys: tuple[Path, Path]
) -> None:
    private, public = keys
    out = tmp_path / "checkpoint.json"
    assert (
        audit("checkpoint", "make", "--key", str(private), "--out", str(out), "--db", db).exit_code
        == 0
    )
    tamper(db)
    result = audit("checkpoint", "check", str(out), "--public-key", str(public), "--db", db)
    assert result.stdout == "failed: chain broken\n"
    assert_one_line_error(result, 1, "chain broken: ", stdout=True)


# --- docs/cli.md ----------------------------------------------------------------------------------

DOCS = Path(__file__).resolve().parent.parent / "docs" / "cli.md"


def command_paths(group: typer.Typer, prefix: str = "") -> list[str]:
    paths = [f"{prefix}{info.name}" for info in group.registered_commands]
    for sub in group.registered_groups:
        assert sub.typer_instance is not None
        paths += command_paths(sub.typer_instance, f"{prefix}{sub.name} ")
    return paths


def test_every_audit_command_has_a_section_in_the_docs() -> None:
    text = DOCS.read_text(encoding="utf-8")
    paths = command_paths(audit_app())
    assert sorted(paths) == [
        "checkpoint check",
        "checkpoint make",
        "export",
        "import",
        "keys generate",
        "timeline",
        "verify",
    ]
    assert re.search(r"^## `acctdomain kpis`$", text, re.M)
    for path in paths:
        heading = re.search(rf"^### `acctdomain audit {re.escape(path)}`$", text, re.M)
        assert heading is not None, path
        following = re.compile(r"^#+ ", re.M).search(text, heading.end())
        body = text[heading.end() : following.start() if following else len(text)]
        assert "JSON keys" in body, path
        assert f"$ acctdomain audit {path}" in body or f"acctdomain audit {path} " in body, path


# --- timeline -------------------------------------------------------------------------------------


@pytest.fixture
def contacted(tmp_path: Path) -> str:
    """Acme (external key crm:1): opened by amy, two contacts by bob, the second backdated."""
    from datetime import UTC, datetime

    from tests.conftest import FakeClock

    path = str(tmp_path / "timeline.db")
    clock = FakeClock(datetime(2026, 3, 2, 9, tzinfo=UTC))
    service = AccountService(path, plugins=host(), clock=clock)
    try:
        acme = service.open_account(
            name="Acme", segment="smb", industry="retail", currency="EUR", manager="amy",
            manager_type="sales", external_key="crm:1", actor="amy",
        ).account_id  # fmt: skip
        clock.advance(days=1)
        service.log_contact(acme, channel="phone", direction="outbound", actor="bob")
        clock.advance(days=1)
        service.log_contact(
            acme, channel="email", direction="inbound", actor="bob",
            effective_at=datetime(2026, 3, 2, 15, tzinfo=UTC),
        )  # fmt: skip
    finally:
        service.close()
    return path


def test_timeline_by_external_key_in_recorded_or_effective_order(contacted: str) -> None:
    report = as_json(audit("timeline", "crm:1", "--db", contacted, "--json"))
    assert set(report) == {"db", "account_id", "order", "entries"}
    entries = report["entries"]
    assert [e["version"] for e in entries] == [1, 2, 3]
    assert set(entries[0]) == {
        "version", "event_id", "type", "description", "actor", "effective_at",
        "recorded_at", "correlation_id", "causation_id", "causes", "external_cause",
    }  # fmt: skip
    assert [e["actor"] for e in entries] == ["amy", "bob", "bob"]
    assert entries[0]["type"] == "AccountOpened"
    effective = as_json(
        audit("timeline", report["account_id"], "--order", "effective", "--db", contacted, "--json")
    )
    assert [e["version"] for e in effective["entries"]] == [1, 3, 2]


def test_timeline_filters_and_table(contacted: str) -> None:
    only = as_json(
        audit(
            "timeline", "crm:1", "--type", "ContactLogged", "--recorded-from", "2026-03-04",
            "--db", contacted, "--json",
        )
    )  # fmt: skip
    assert [e["version"] for e in only["entries"]] == [3]
    result = audit("timeline", "crm:1", "--actor", "amy", "--db", contacted)
    assert result.exit_code == 0, result.output
    assert "Account opened" in result.stdout
    assert "(1 events)" in result.stdout


@pytest.mark.parametrize(
    ("args", "starts"),
    [
        (["crm:404"], "ACCOUNT crm:404: the store has no such account"),
        (["crm:1", "--effective-from", "March"], "--effective-from: expected a date"),
        (["crm:1", "--recorded-to", "2026-03-01T09:00"], "--recorded-to: a time needs its offset"),
        (["crm:1", "--order", "random"], "--order: expected recorded or effective"),
        (["crm:1", "--type", "NoSuchEvent"], "--type: 'NoSuchEvent' is not"),
        ([" "], "ACCOUNT: expected an account id or an external key"),
    ],
)
def test_timeline_refuses_mistakes(contacted: str, args: list[str], starts: str) -> None:
    assert_one_line_error(audit("timeline", *args, "--db", contacted), 2, starts)
