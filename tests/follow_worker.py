"""A writer in a process of its own, for tests/test_follow.py.

``python -m tests.follow_worker STORE`` opens an AccountService on STORE (built-ins only, no
projections run here), then reads lines from stdin: ``open KEY`` opens the account with
external key KEY and answers ``opened KEY <account hex>``; ``quit`` (or the end of input)
closes the service and exits. The parent decides when each write happens, so it can check
that it sees one process's write while that process is still alive.
"""

from __future__ import annotations

import sys

from acctdomain import AccountService
from acctdomain.plugins import PluginHost


def main(store: str) -> None:
    service = AccountService(store, plugins=PluginHost(entry_points=False))
    try:
        print("ready", flush=True)
        for line in sys.stdin:
            command, _, key = line.strip().partition(" ")
            if command == "quit":
                break
            if command != "open" or not key:
                raise SystemExit(f"unknown command {line.strip()!r}")
            account_id = service.open_account(
                name=f"Company {key}",
                segment="smb",
                industry="retail",
                currency="EUR",
                manager="amy",
                manager_type="sales",
                external_key=key,
                actor="worker",
            ).account_id
            print(f"opened {key} {account_id.hex}", flush=True)
    finally:
        service.close()


if __name__ == "__main__":
    main(sys.argv[1])
