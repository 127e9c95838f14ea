"""A projection worker of one partition, in a process of its own, for tests/test_partitions.py.

``python -m tests.partition_worker STORE INDEX/COUNT`` follows STORE with a runner of the
``account_ledger`` test projection for that partition and prints ``ready``; then reads lines
from stdin: ``wait N`` waits until it has caught up with notification N and answers
``caught-up N APPLIED`` (APPLIED: the ledger rows of its own accounts); ``quit`` (or the end
of input) stops and exits.
"""

from __future__ import annotations

import sys
from uuid import UUID

from acctdomain import AccountService
from acctdomain.plugins import PluginHost
from acctdomain.projections import ProjectionRunner, StoreFollower
from acctdomain.projections.keys import Partition
from tests.projection_fixtures import AccountLedger


def main(store: str, part: str) -> None:
    partition = Partition.parse(part)
    service = AccountService(store, plugins=PluginHost(entry_points=False))
    runner = ProjectionRunner(service, [AccountLedger()], partition=partition)
    follower = StoreFollower(service, runner, recheck_interval=0.2)
    try:
        follower.start()
        print("ready", flush=True)
        for line in sys.stdin:
            command, _, argument = line.strip().partition(" ")
            if command == "quit":
                break
            if command != "wait":
                raise SystemExit(f"unknown command {line.strip()!r}")
            position = int(argument)
            follower.wait_until(position, timeout=60)
            [status] = runner.status()
            if status.state != "running":
                raise SystemExit(f"the worker is {status.state}: {status.last_error}")
            rows = runner.read_model("account_ledger").scan("events")
            applied = sum(1 for key, _ in rows if partition.owns(UUID(key.split("/")[0])))
            print(f"caught-up {position} {applied}", flush=True)
    finally:
        follower.close()
        runner.close()
        service.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
