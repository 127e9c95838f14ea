"""``acctdomain audit``: verify the hash chain of a store, export and import the whole log,
sign and check checkpoints, and make the key pair that signs them (docs/audit.md).

The store options, errors and exit codes are those of ``acctdomain projections``: a user
mistake (a missing file, a bad key or passphrase) ends with one ``error:`` line and exit
code 2; a chain that is broken, a checkpoint that does not check out, a file that does not
fit its chain or a store that fails, with exit code 1. docs/cli.md documents every command
and its JSON.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn
from uuid import UUID

import typer
from rich.table import Table

from acctdomain.application import StoreSpec, parse_store
from acctdomain.audit import (
    Checkpoint,
    TimelineEntry,
    VerifyReport,
    check_checkpoint,
    export_log,
    generate_keys,
    import_log,
    key_id,
    load_private_key,
    load_public_key,
    make_checkpoint,
    timeline,
    verify,
)
from acctdomain.cli_common import NaiveTime, parse_moment
from acctdomain.cli_projections import (
    FAILURE,
    STORE_ERRORS,
    AsJson,
    Db,
    _echo_json,
    _fail,
    _one_line,
    _Plugins,
    _progress_bar,
    _session,
    _stdout,
    _store,
    _where,
)
from acctdomain.domain.identifiers import account_id_for
from acctdomain.errors import (
    AccountNotFound,
    AcctDomainError,
    CommandRejected,
    InvalidValue,
    RuleViolation,
    StoreConfigurationError,
)
from acctdomain.plugins import PluginHost

__all__ = ["GROUP", "audit_app", "timeline_report", "verify_report"]

GROUP = "audit"


def audit_app(host: PluginHost | None = None) -> typer.Typer:
    """The ``audit`` command group. (Its commands read and write the stored bytes and need no
    plugins; ``host`` is kept for the shape of the other groups.)"""
    group = typer.Typer(
        name=GROUP,
        help="The audit trail: verify the hash chain, export and import, signed checkpoints, "
        "timelines.",
        no_args_is_help=True,
        context_settings={"obj": _Plugins(host)},
    )
    group.command("verify")(verify_command)
    group.command("export")(export_command)
    group.command("import")(import_command)
    group.command("timeline")(timeline_command)
    checkpoint = typer.Typer(help="Signed checkpoints of the chain's head.", no_args_is_help=True)
    checkpoint.command("make")(checkpoint_make)
    checkpoint.command("check")(checkpoint_check)
    group.add_typer(checkpoint, name="checkpoint")
    keys = typer.Typer(help="The Ed25519 key pair that signs checkpoints.", no_args_is_help=True)
    keys.command("generate")(keys_generate)
    group.add_typer(keys, name="keys")
    return group


# --- helpers ----------------------------------------------------------------------------------


@contextmanager
def _working(where: str) -> Iterator[None]:
    """A store that cannot be opened as one ends with exit code 2; one that fails while it is
    read or written, with 1."""
    try:
        yield
    except StoreConfigurationError as error:
        _fail(f"--db {where}: {error.reason}")
    except STORE_ERRORS as error:
        _fail(f"{where}: {_one_line(error)}", code=FAILURE)


def _refused(error: CommandRejected, prefix: str = "", code: int = 2) -> NoReturn:
    _fail(f"{prefix}{error.reason}", code=code)


def _hex(data: bytes) -> str:
    return data.hex()


def verify_report(report: VerifyReport) -> dict[str, Any]:
    """A verification as JSON; every key is always present."""
    problem = report.problem
    return {
        "ok": report.ok,
        "checked": report.checked,
        "total": report.total,
        "head_position": report.head_position,
        "head_hash": report.head_hex,
        "problem": None
        if problem is None
        else {"position": problem.position, "kind": str(problem.kind), "detail": problem.detail},
    }


def checkpoint_report(checkpoint: Checkpoint) -> dict[str, Any]:
    """A checkpoint's fields as JSON (not its signature)."""
    recorded = checkpoint.recorded_at
    return {
        "position": checkpoint.position,
        "head_hash": checkpoint.head_hex,
        "recorded_at": None if recorded is None else recorded.isoformat(),
        "signed_at": checkpoint.signed_at.isoformat(),
        "key_id": _hex(checkpoint.key_id),
        "scheme": checkpoint.scheme,
    }


def _passphrase(variable: str | None) -> str | None:
    if variable is None:
        return None
    value = os.environ.get(variable)
    if not value:
        _fail(f"--passphrase-env: the environment variable {variable} is not set or empty")
    return value


def _new_file(path: Path, option: str) -> None:
    if path.exists():
        _fail(f"{option} {path}: exists already (never overwritten)")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        _fail(f"{option} {path}: the directory {parent} does not exist")


def _existing_file(path: Path, what: str) -> None:
    if not path.is_file():
        _fail(f"{what} {path}: no such file")


def _broken_line(report: VerifyReport) -> str:
    problem = report.problem
    assert problem is not None
    return (
        f"the chain is broken at position {problem.position}: {problem.kind} "
        f"({problem.detail}); {report.checked} of {report.total} events checked out before it"
    )


# --- verify, export, import -------------------------------------------------------------------


def verify_command(
    db: Db = None,
    as_json: AsJson = False,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Processes checking the store side by side (default: 2 for stores of "
            "100,000 events or more on 2 cores or more, else 1). The report is the same.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Walk the store's hash chain and report the first event changed, deleted, inserted or
    moved (exit code 1 when there is one)."""
    spec = _store(db)
    where = _where(spec)
    with _working(where), _progress_bar("Verifying") as progress:
        report = verify(spec, progress=progress, workers=workers)
    if as_json:
        _echo_json({"db": where, **verify_report(report)})
    elif report.ok:
        typer.echo(
            f"ok: {report.checked} events of {where} checked, "
            f"head {report.head_hex[:16]} at position {report.head_position}"
        )
    if not report.ok:
        if not as_json:
            problem = report.problem
            assert problem is not None
            typer.echo(f"broken: {problem.kind} at position {problem.position} in {where}")
        _fail(_broken_line(report), code=FAILURE)


KeysOption = Annotated[
    Path | None,
    typer.Option(
        "--keys",
        metavar="FILE",
        help="The data subjects' keys file (personal data stays readable only with it).",
        show_default=False,
    ),
]


def export_command(
    file: Annotated[
        Path,
        typer.Argument(metavar="FILE", help="The JSON Lines file to write.", show_default=False),
    ],
    keys: KeysOption = None,
    db: Db = None,
    as_json: AsJson = False,
) -> None:
    """Write every event of the store with its chain hash to a JSON Lines file (personal
    fields stay encrypted; ``--keys`` writes their keys to a separate file)."""
    spec = _store(db)
    where = _where(spec)
    _new_file(file, "FILE")
    if keys is not None:
        _new_file(keys, "--keys")
    with _working(where), _progress_bar("Exporting") as progress:
        try:
            summary = export_log(spec, file, progress=progress, keys=keys)
        except InvalidValue as error:
            if error.field == "store":
                _fail(f"{where}: {error.reason}", code=FAILURE)
            _refused(error, "FILE: ")
    report = {
        "db": where,
        "file": str(file),
        "events": summary.events,
        "head_position": summary.head_position,
        "head_hash": summary.head_hex,
        "keys": None if keys is None else str(keys),
    }
    if as_json:
        _echo_json(report)
    else:
        typer.echo(
            f"exported {summary.events} events of {where} to {file}, "
            f"head {summary.head_hex[:16]} at position {summary.head_position}"
        )


def _target(db: str | None) -> StoreSpec:
    """The store to import into: it may not exist yet (an SQLite file is created)."""
    try:
        spec = parse_store(db)
    except AcctDomainError as error:
        _fail(f"--db: {_one_line(error)}")
    if spec.kind == "memory":
        _fail("--db: an in-memory store keeps no chain and is gone when the command ends")
    if spec.kind == "sqlite":
        path = Path(spec.path)
        parent = path.parent if str(path.parent) else Path(".")
        if path.is_dir() or not parent.is_dir():
            _fail(f"--db {spec.path}: not a file in an existing directory")
    return spec


def import_command(
    file: Annotated[
        Path, typer.Argument(metavar="FILE", help="An export (JSON Lines).", show_default=False)
    ],
    keys: KeysOption = None,
    db: Db = None,
    as_json: AsJson = False,
) -> None:
    """Check an export file, then write its events into an empty store (an SQLite file is
    created), keeping their notification ids and hashes; with ``--keys`` the data subjects'
    keys too (without them personal fields read as erased)."""
    _existing_file(file, "FILE")
    if keys is not None:
        _existing_file(keys, "--keys")
    spec = _target(db)
    where = _where(spec)
    with _working(where), _progress_bar("Importing") as progress:
        try:
            summary = import_log(file, spec, progress=progress, keys=keys)
        except InvalidValue as error:
            if error.field == "keys":
                _fail(f"--keys {keys}: {error.reason}; nothing was imported")
            if error.field.startswith("line "):
                _fail(f"{file}: {error}; nothing was imported", code=FAILURE)
            _refused(error, "FILE: ")
        except RuleViolation as error:
            _fail(f"--db {where}: {error.reason}")
    report = {
        "db": where,
        "file": str(file),
        "events": summary.events,
        "head_position": summary.head_position,
        "head_hash": summary.head_hex,
        "verification": verify_report(summary.report),
        "keys": None if keys is None else str(keys),
    }
    if as_json:
        _echo_json(report)
    else:
        typer.echo(
            f"imported {summary.events} events from {file} into {where}, "
            f"head {summary.head_hex[:16]} at position {summary.head_position}; verified "
            f"{'ok' if summary.report.ok else 'broken'}"
        )
    if not summary.report.ok:
        _fail(_broken_line(summary.report), code=FAILURE)


# --- checkpoints, keys ------------------------------------------------------------------------

PassphraseEnv = Annotated[
    str | None,
    typer.Option(
        "--passphrase-env",
        metavar="VAR",
        help="The environment variable holding the private key's passphrase.",
        show_default=False,
    ),
]


def checkpoint_make(
    key: Annotated[
        Path,
        typer.Option(
            "--key", metavar="PRIVATE.pem", help="The Ed25519 private key.", show_default=False
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out", metavar="FILE", help="The checkpoint file to write.", show_default=False
        ),
    ],
    passphrase_env: PassphraseEnv = None,
    db: Db = None,
    as_json: AsJson = False,
) -> None:
    """Verify the store and sign its head: a checkpoint file to publish or give an auditor."""
    spec = _store(db)
    where = _where(spec)
    _existing_file(key, "--key")
    _new_file(out, "--out")
    try:
        private_key = load_private_key(key, passphrase=_passphrase(passphrase_env))
    except InvalidValue as error:
        _refused(error, "--key: ")
    with _working(where), _progress_bar("Verifying") as progress:
        try:
            checkpoint = make_checkpoint(spec, private_key, progress=progress)
        except InvalidValue as error:
            _fail(f"{where}: {error.reason}", code=FAILURE)
    try:
        with open(out, "x", encoding="ascii") as written:
            written.write(checkpoint.to_json())
    except OSError as error:
        _fail(f"--out {out}: cannot write: {error.strerror or error}")
    if as_json:
        _echo_json({"db": where, "file": str(out), **checkpoint_report(checkpoint)})
    else:
        typer.echo(
            f"signed {where} at position {checkpoint.position}, head "
            f"{checkpoint.head_hex[:16]}, key {_hex(checkpoint.key_id)[:16]}: wrote {out}"
        )


def checkpoint_check(
    file: Annotated[
        Path, typer.Argument(metavar="FILE", help="The checkpoint file.", show_default=False)
    ],
    public_key: Annotated[
        Path,
        typer.Option(
            "--public-key",
            metavar="PUBLIC.pem",
            help="The signer's Ed25519 public key.",
            show_default=False,
        ),
    ],
    db: Db = None,
    as_json: AsJson = False,
) -> None:
    """Check that the store still extends a checkpoint, with the signer's public key only
    (exit code 1 when it does not, or the checkpoint was changed or signed by another key)."""
    spec = _store(db)
    where = _where(spec)
    _existing_file(file, "FILE")
    _existing_file(public_key, "--public-key")
    try:
        checkpoint = Checkpoint.load(file)
    except InvalidValue as error:
        _refused(error, f"{file}: ")
    try:
        key = load_public_key(public_key)
    except InvalidValue as error:
        _refused(error, "--public-key: ")
    with _working(where), _progress_bar("Checking") as progress:
        try:
            result = check_checkpoint(spec, checkpoint, key, progress=progress)
        except InvalidValue as error:
            _fail(f"{file}: {error.reason}", code=FAILURE)
    report = result.report
    if as_json:
        _echo_json(
            {
                "db": where,
                "file": str(file),
                "ok": result.ok,
                "reason": None if result.reason is None else str(result.reason),
                "detail": result.detail,
                "checkpoint": checkpoint_report(checkpoint),
                "verification": None if report is None else verify_report(report),
            }
        )
    elif result.ok:
        typer.echo(f"ok: {result.detail}")
    else:
        typer.echo(f"failed: {result.reason}")
    if not result.ok:
        _fail(f"{result.reason}: {result.detail}", code=FAILURE)


def keys_generate(
    directory: Annotated[
        Path,
        typer.Argument(
            metavar="DIR",
            help="Where to write the key files (created if missing).",
            show_default=False,
        ),
    ],
    name: Annotated[
        str, typer.Option("--name", help="The files' name: NAME.pem and NAME.pub.")
    ] = "audit",
    passphrase_env: PassphraseEnv = None,
    as_json: AsJson = False,
) -> None:
    """Write a new Ed25519 key pair: NAME.pem (private, owner-only, encrypted with the
    passphrase if given) and NAME.pub (public). Existing files are never overwritten."""
    if not name or "/" in name or name.startswith("."):
        _fail(f"--name: expected a plain file name, got {name!r}")
    passphrase = _passphrase(passphrase_env)
    if directory.exists() and not directory.is_dir():
        _fail(f"DIR {directory}: not a directory")
    private, public = directory / f"{name}.pem", directory / f"{name}.pub"
    for path in (private, public):
        if path.exists():
            _fail(f"{path}: exists already (keys are never overwritten)")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        made = generate_keys(private, public, passphrase=passphrase)
    except OSError as error:
        _fail(f"DIR {directory}: cannot write there: {error.strerror or error}")
    except InvalidValue as error:
        _refused(error)
    report: dict[str, Any] = {
        "private_key": str(private),
        "public_key": str(public),
        "key_id": _hex(key_id(made)),
        "encrypted": passphrase is not None,
    }
    if as_json:
        _echo_json(report)
    else:
        typer.echo(
            f"wrote {private} (private{', encrypted' if passphrase else ''}: keep it away from "
            f"the store) and {public} (public), key {report['key_id'][:16]}"
        )


# --- timeline ---------------------------------------------------------------------------------


def _moment(text: str | None, option: str) -> date | datetime | None:
    """A date (``2026-03-01``) or a time with its offset (``2026-03-01T09:00+00:00``)."""
    if text is None:
        return None
    try:
        return parse_moment(text)
    except NaiveTime:
        _fail(f"{option}: a time needs its offset (2026-03-01T09:00+00:00), got {text!r}")
    except ValueError:
        _fail(f"{option}: expected a date (2026-03-01) or a time with its offset, got {text!r}")


def _account_of(text: str) -> UUID:
    """An account id, or the external key it was opened with (``crm:1``)."""
    if not text.strip():
        _fail("ACCOUNT: expected an account id or an external key, got ''")
    try:
        return UUID(text)
    except ValueError:
        return account_id_for(text)


def timeline_report(entry: TimelineEntry) -> dict[str, Any]:
    """One timeline entry as JSON; every key is always present."""
    return {
        "version": entry.version,
        "event_id": str(entry.event_id),
        "type": entry.type,
        "description": entry.description,
        "actor": entry.actor,
        "effective_at": entry.effective_at.isoformat(),
        "recorded_at": entry.recorded_at.isoformat(),
        "correlation_id": str(entry.correlation_id),
        "causation_id": None if entry.causation_id is None else str(entry.causation_id),
        "causes": [
            {
                "event_id": str(cause.event_id),
                "account_id": str(cause.account_id),
                "version": cause.version,
                "type": cause.type,
                "description": cause.description,
            }
            for cause in entry.causes
        ],
        "external_cause": None if entry.external_cause is None else str(entry.external_cause),
    }


def timeline_command(
    ctx: typer.Context,
    account: Annotated[
        str, typer.Argument(help="The account's id, or the external key it was opened with.")
    ],
    types: Annotated[
        list[str] | None,
        typer.Option("--type", metavar="EVENT", help="Only events of this type (repeatable)."),
    ] = None,
    effective_from: Annotated[
        str | None, typer.Option("--effective-from", metavar="DATE", show_default=False)
    ] = None,
    effective_to: Annotated[
        str | None, typer.Option("--effective-to", metavar="DATE", show_default=False)
    ] = None,
    recorded_from: Annotated[
        str | None, typer.Option("--recorded-from", metavar="DATE", show_default=False)
    ] = None,
    recorded_to: Annotated[
        str | None, typer.Option("--recorded-to", metavar="DATE", show_default=False)
    ] = None,
    actor: Annotated[
        str | None, typer.Option("--actor", help="Only events recorded by them.")
    ] = None,
    order: Annotated[
        str, typer.Option("--order", help="recorded (the store's order) or effective.")
    ] = "recorded",
    db: Db = None,
    as_json: AsJson = False,
) -> None:
    """An account's history: who recorded what, effective and recorded when, and its causes."""
    account_id = _account_of(account)
    bounds = {
        "effective_from": _moment(effective_from, "--effective-from"),
        "effective_to": _moment(effective_to, "--effective-to"),
        "recorded_from": _moment(recorded_from, "--recorded-from"),
        "recorded_to": _moment(recorded_to, "--recorded-to"),
    }
    if order not in ("recorded", "effective"):
        _fail(f"--order: expected recorded or effective, got {order!r}")
    with _session(ctx, db) as (service, where):
        try:
            entries = timeline(
                service,
                account_id,
                types=types or None,
                actor=actor,
                order="effective" if order == "effective" else "recorded",
                **bounds,
            )
        except AccountNotFound:
            _fail(f"ACCOUNT {account}: the store has no such account")
        except InvalidValue as error:  # a filter: named as its option
            option = "--type" if error.field == "types" else f"--{error.field.replace('_', '-')}"
            _fail(f"{option}: {error.reason}")
    if as_json:
        _echo_json(
            {
                "db": where,
                "account_id": str(account_id),
                "order": order,
                "entries": [timeline_report(entry) for entry in entries],
            }
        )
        return
    table = Table(title=f"Timeline of {account_id} ({len(entries)} events)", title_justify="left")
    for column in ("v", "recorded", "effective", "actor", "what", "caused by"):
        table.add_column(column)
    for entry in entries:
        cause = entry.causes[0].description if entry.causes else ""
        table.add_row(
            str(entry.version),
            f"{entry.recorded_at:%Y-%m-%d %H:%M}",
            f"{entry.effective_at:%Y-%m-%d %H:%M}",
            entry.actor,
            entry.description,
            cause,
        )
    _stdout().print(table)
