"""Catches up the crash-test projections slowly, to be killed with SIGKILL half-way.

Usage: python tests/crash_worker.py STORE_URL. Prints "committed" once three batches of seven
events are committed (the fourth is being applied), then goes on slowly until it is killed.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from acctdomain.plugins.types import Rows
from acctdomain.projections import ProjectionRunner
from tests.test_crash_recovery import ContactsPerAccount, RevenueLog, service_on

BATCH = 7


class SlowContacts(ContactsPerAccount):
    def apply(self, event: Any, rows: Rows) -> None:
        super().apply(event, rows)
        if self.seen == 3 * BATCH + 1:  # the first three batches are committed
            print("committed", flush=True)
        if self.seen > 3 * BATCH:
            time.sleep(0.01)


def main(arguments: list[str]) -> int:
    if len(arguments) != 1:
        print("usage: crash_worker.py STORE_URL", file=sys.stderr)
        return 2
    service = service_on(arguments[0])
    with ProjectionRunner(service, [SlowContacts(), RevenueLog()], batch_size=BATCH) as runner:
        runner.catch_up()
    print("finished: not killed in time", flush=True)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
