"""Embed acctdomain: record an account's first weeks in an SQLite file, then ask about it.

Run ``python docs/examples/getting_started.py [new-file.db]``; without an argument the events go
to a fresh file in a temporary directory. A second run on the same file stops at open_account with
AccountAlreadyExists: the CRM key always addresses the same account. tests/test_docs.py runs this.
"""

import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from acctdomain import AccountService, Money, NpsScore, ProductLine
from acctdomain.errors import CommandRejected

path = sys.argv[1] if len(sys.argv) > 1 else str(Path(tempfile.mkdtemp()) / "book.db")
service = AccountService(path)  # or "memory:", or "postgresql://user@host/db?schema=acct"
signed = datetime.now(UTC) - timedelta(days=30)  # business time; recorded time is now

acme = service.open_account(
    name="Acme Logistics",
    segment="enterprise",
    industry="logistics",
    currency="EUR",
    manager="amy",
    manager_type="strategic",
    external_key="crm:0017Q00000AbCdE",
    actor="amy",
    effective_at=signed,
).account_id
line = ProductLine("tracking", Money("48000.00", "EUR"))
end = signed.date() + timedelta(days=365)
service.start_contract(acme, term_end=end, lines=[line], actor="amy", effective_at=signed)
service.log_contact(acme, channel="qbr", direction="outbound", summary="Kick-off", actor="amy")
issue = service.raise_issue(
    acme, title="Late sync", severity="high", category="integration", actor="amy"
).entity_id
service.resolve_issue(acme, issue_id=issue, resolution="Connector patched", actor="amy")
service.record_feedback(acme, score=NpsScore(9), respondent="cfo", actor="amy")

state = service.get_account(acme)
print(f"{state.name}: {state.status.value}, ARR {state.arr}, version {state.version}")
nps = state.latest_nps.value if state.latest_nps else None
print(f"issues: {len(state.issues)} raised, {len(state.open_issues)} open; latest NPS {nps}")
try:  # a refused command appends nothing and says which field was wrong, and why
    service.upsell(acme, product="tracking", added_arr=Money(5000, "USD"), actor="amy")
except CommandRejected as refused:
    print(f"refused with {type(refused).__name__} on {refused.field!r}: {refused.reason}")
service.close()
