"""The error hierarchy: messages name field and reason, and every error survives pickling
(errors cross process boundaries in worker pools and job queues)."""

from __future__ import annotations

import pickle
from uuid import UUID

import pytest

from acctdomain import errors

ACCOUNT = UUID(int=7)

EXAMPLES: list[errors.AcctDomainError] = [
    errors.CommandRejected("field", "reason"),
    errors.InvalidValue("score", "must be 0-10"),
    errors.CurrencyMismatch("amount", "EUR is not USD"),
    errors.RuleViolation("status", "no"),
    errors.AccountNotActive("status", "cannot renew: the account has churned"),
    errors.UnknownReference("issue_id", "no such issue"),
    errors.InvalidTransition("issue_id", "already resolved"),
    errors.AccountAlreadyExists("account_id", "exists already"),
    errors.AccountNotFound(ACCOUNT),
    errors.AccountNotFound(ACCOUNT, "it did not exist yet"),
    errors.ConcurrencyConflict(ACCOUNT, "expected version 3, the account is at 4"),
    errors.IdempotencyKeyReused("key-1", "first used for 'renew'"),
    errors.StoreConfigurationError("store", "unsupported scheme"),
    errors.NotAuthorized("actor", "interns may not churn accounts", "acl"),
    errors.PluginError("commissions", "failed to import: No module named 'x'"),
    errors.DuplicateRegistration("kpi", "nrr", "builtin.kpis", "commissions"),
]


def test_every_error_class_has_an_example() -> None:
    classes = {getattr(errors, name) for name in errors.__all__}
    assert classes == {type(example) for example in EXAMPLES} | {errors.AcctDomainError}


@pytest.mark.parametrize("error", EXAMPLES, ids=lambda e: type(e).__name__)
def test_errors_survive_pickling_with_their_fields(error: errors.AcctDomainError) -> None:
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert vars(copy) == vars(error)


def test_field_errors_read_field_colon_reason() -> None:
    error = errors.InvalidValue("nps", "must be between 0 and 10")
    assert (error.field, error.reason) == ("nps", "must be between 0 and 10")
    assert str(error) == "nps: must be between 0 and 10"


def test_a_duplicate_registration_names_both_plugins() -> None:
    error = errors.DuplicateRegistration("kpi", "nrr", "builtin.kpis", "commissions")
    assert error.plugin == "commissions"
    assert (
        str(error)
        == "plugin 'commissions': kpi 'nrr' is registered already by plugin 'builtin.kpis'"
    )


def test_a_denial_names_the_plugin_and_keeps_the_reason() -> None:
    error = errors.NotAuthorized("actor", "interns may not churn accounts", "acl")
    assert (error.field, error.reason, error.plugin) == (
        "actor",
        "interns may not churn accounts",
        "acl",
    )
    assert str(error) == "actor: interns may not churn accounts (denied by plugin 'acl')"
