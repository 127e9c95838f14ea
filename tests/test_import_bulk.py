"""bulk_write: many accounts per transaction, with what a single command guarantees."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest

from acctdomain import AccountService
from acctdomain.application.bulk import BulkCommand, BulkLedger, bulk_write, ledger_id_for
from acctdomain.domain import account_id_for
from acctdomain.errors import AccountNotFound, InvalidValue
from acctdomain.importing import import_files
from acctdomain.plugins import PluginHost

DATA = Path(__file__).parent / "data" / "import"
GOOD = [(k, DATA / f"{k}.csv") for k in ("accounts", "activities", "tickets", "surveys")]
ACME = account_id_for("crm:0017Q00000AbCdE")
AT = datetime(2024, 1, 1, tzinfo=UTC)


def opening(index: int) -> tuple[Any, list[BulkCommand]]:
    account_id = account_id_for(f"bulk:{index}")
    arguments = dict(
        name=f"Account {index}",
        segment="smb",
        industry="Retail",
        currency="EUR",
        manager="Ana",
        manager_type="sales",
        external_key=f"bulk:{index}",
    )
    contact = dict(
        channel="email", direction="inbound", summary="", stakeholder_ids=(), duration_minutes=None
    )
    return account_id, [
        BulkCommand("open_account", account_id, AT, arguments, f"open:{index}", "d"),
        BulkCommand("log_contact", account_id, AT, contact, f"contact:{index}", "d"),
    ]


def test_a_concurrent_write_is_decided_again_on_the_new_version(tmp_path: Path) -> None:
    path = str(tmp_path / "events.db")
    ours = AccountService(path, plugins=PluginHost(entry_points=False))
    theirs = AccountService(path, plugins=PluginHost(entry_points=False))
    try:
        import_files(ours, GOOD[:1])
        real_save = ours.save
        calls = []

        def racing_save(*objects: Any, **kwargs: Any) -> Any:
            calls.append(len(objects))
            if len(calls) == 1:  # another process logs a contact on Acme first
                theirs.log_contact(ACME, channel="phone", direction="inbound", actor="amy")
            return real_save(*objects, **kwargs)

        ours.save = racing_save  # type: ignore[method-assign]
        report = import_files(ours, GOOD[1:2])
        assert len(calls) == 2
        assert report.errors == ()
        acme = ours.get_account(ACME)
        assert acme.contact_count == 3  # theirs and our two, none lost, none twice
        assert len(ours.history(ACME)) == 4
    finally:
        ours.close()
        theirs.close()


def test_a_failed_transaction_appends_nothing_and_a_rerun_completes(
    memory_service: AccountService,
) -> None:
    groups = [opening(i) for i in range(3)]
    real_save = memory_service.save
    calls = []

    def failing_second(*objects: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:
            raise OSError("disk full")
        return real_save(*objects, **kwargs)

    memory_service.save = failing_second  # type: ignore[method-assign]
    with pytest.raises(OSError, match="disk full"):
        bulk_write(memory_service, groups, actor="bot", accounts_per_transaction=1)
    assert memory_service.get_account(groups[0][0]).version == 2
    with pytest.raises(AccountNotFound):
        memory_service.get_account(groups[1][0])
    memory_service.save = real_save  # type: ignore[method-assign]
    result = bulk_write(memory_service, groups, actor="bot", accounts_per_transaction=1)
    assert (result.applied, result.replayed, result.transactions) == (4, 2, 2)
    assert all(memory_service.get_account(a).version == 2 for a, _ in groups)


def test_the_ledger_keeps_every_key_with_its_digest(memory_service: AccountService) -> None:
    account_id, commands = opening(7)
    bulk_write(memory_service, [(account_id, commands)], actor="bot")
    ledger: BulkLedger = memory_service.repository.get(ledger_id_for(account_id))
    assert ledger.entries == {"open:7": "d", "contact:7": "d"}
    assert ledger.account_id == account_id


def test_commands_without_a_key_are_applied_each_time(memory_service: AccountService) -> None:
    account_id, (opened, contact) = opening(1)
    bulk_write(memory_service, [(account_id, [opened])], actor="bot")
    unkeyed = BulkCommand(contact.command, account_id, AT, contact.arguments)
    for _ in range(2):
        result = bulk_write(memory_service, [(account_id, [unkeyed])], actor="bot")
        assert result.applied == 1
    assert memory_service.get_account(account_id).contact_count == 2


def test_misuse_is_refused_with_typed_errors(memory_service: AccountService) -> None:
    account_id, commands = opening(2)
    with pytest.raises(InvalidValue, match="accounts_per_transaction"):
        bulk_write(
            memory_service, [(account_id, commands)], actor="bot", accounts_per_transaction=0
        )
    with pytest.raises(InvalidValue, match="actor"):
        bulk_write(memory_service, [(account_id, commands)], actor="")
    odd = [
        BulkCommand("delete_everything", account_id, AT, {}),
        BulkCommand("log_contact", uuid4(), AT, {}),
    ]
    result = bulk_write(memory_service, [(account_id, [commands[0], *odd])], actor="bot")
    fields = [getattr(r.error, "field", "") for r in result.refused]
    assert fields == ["command", "account_id"]
    assert result.applied == 1


def test_all_or_nothing_with_nothing_to_do_commits_nothing_and_is_not_an_error(
    memory_service: AccountService,
) -> None:
    result = bulk_write(memory_service, [], actor="bot", all_or_nothing=True)
    assert result.committed
    assert result.transactions == 0


def test_read_models_are_told_after_each_transaction() -> None:
    service = AccountService(
        "memory:", plugins=PluginHost(entry_points=False), project_synchronously=True
    )
    try:
        import_files(service, GOOD)
        assert service.sync_error is None
        assert service.catch_up() == 0  # already up to date
    finally:
        service.close()
