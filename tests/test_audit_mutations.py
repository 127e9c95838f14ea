"""The mutation campaign: 1,200 random single mutations of stored rows per backend, each found
by verify() at the right position and named for what it is.

One store per backend (with gaps in its notification ids, and a chain built partly by the
first-open backfill and partly by the live recorder); each mutation is made in a transaction
that is rolled back after verify() has read the store through the same connection.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from uuid import uuid4

import pytest

from acctdomain.application.stores import parse_store
from acctdomain.audit import ProblemKind
from tests.pg import drop_schema, new_schema_url
from tests.test_audit_verify import Store, Tampering, write_legacy_sqlite

MUTATIONS = 1_200
EVENTS = 120

Mutation = Callable[[Tampering, random.Random], tuple[int, ProblemKind]]


def _event(t: Tampering, rng: random.Random) -> tuple[int, bool]:
    ids = t.event_ids()
    position = rng.choice(ids)
    return position, position == ids[-1]


def changed_state_byte(t: Tampering, rng: random.Random) -> tuple[int, ProblemKind]:
    position, _ = _event(t, rng)
    state = bytearray(t.row(position)[3])
    state[rng.randrange(len(state))] ^= 1 << rng.randrange(8)
    t.set_state(position, bytes(state))
    return position, ProblemKind.MODIFIED


def changed_topic(t: Tampering, rng: random.Random) -> tuple[int, ProblemKind]:
    position, _ = _event(t, rng)
    topic = t.row(position)[2]
    t.set_topic(position, topic[:-1] + chr(ord(topic[-1]) ^ 1))
    return position, ProblemKind.MODIFIED


def changed_version(t: Tampering, rng: random.Random) -> tuple[int, ProblemKind]:
    position, _ = _event(t, rng)
    t.shift_version(position, rng.choice([10_000, 20_000, -10_000]))
    return position, ProblemKind.MODIFIED


def deleted_event(t: Tampering, rng: random.Random) -> tuple[int, ProblemKind]:
    position, _ = _event(t, rng)
    t.delete_event(position)
    return position, ProblemKind.MISSING


def deleted_chain_row(t: Tampering, rng: random.Random) -> tuple[int, ProblemKind]:
    position, last = _event(t, rng)
    t.delete_link(position)
    # At the end nothing follows to tell a lost chain row from an event appended unchained.
    return position, ProblemKind.INSERTED if last else ProblemKind.CHAIN_ROW_MISSING


def changed_chain_row(t: Tampering, rng: random.Random) -> tuple[int, ProblemKind]:
    position, last = _event(t, rng)
    digest = bytearray(t.link_of(position))
    digest[rng.randrange(len(digest))] ^= 1 << rng.randrange(8)
    t.set_link(position, bytes(digest))
    return position, ProblemKind.MODIFIED if last else ProblemKind.CHAIN_ROW_MODIFIED


def swapped_pair(t: Tampering, rng: random.Random) -> tuple[int, ProblemKind]:
    first, second = sorted(rng.sample(t.event_ids(), 2))
    t.swap_events(first, second)
    return first, ProblemKind.REORDERED


def _free_position(t: Tampering, rng: random.Random) -> tuple[int, bool]:
    """A notification id no event and no chain row has: in a gap, or after the end."""
    taken = set(t.event_ids()) | set(t.chain_ids())
    last = max(taken)
    gaps = [n for n in range(1, last) if n not in taken]
    if gaps and rng.random() < 0.7:
        return rng.choice(gaps), False
    return last + rng.randrange(1, 4), True


def inserted_event(t: Tampering, rng: random.Random) -> tuple[int, ProblemKind]:
    position, _ = _free_position(t, rng)
    t.insert_event(position, uuid4())
    return position, ProblemKind.INSERTED


def inserted_chain_row(t: Tampering, rng: random.Random) -> tuple[int, ProblemKind]:
    position, at_end = _free_position(t, rng)
    t.insert_link(position, rng.randbytes(32))
    # After the end it looks like the chain row of a deleted last event.
    return position, ProblemKind.MISSING if at_end else ProblemKind.CHAIN_ROW_INSERTED


MUTATORS: tuple[Mutation, ...] = (
    changed_state_byte,
    changed_topic,
    changed_version,
    deleted_event,
    deleted_chain_row,
    changed_chain_row,
    swapped_pair,
    inserted_event,
    inserted_chain_row,
)


@pytest.fixture(params=["sqlite", "postgres"])
def campaign_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    rng = random.Random(2024)
    if request.param == "sqlite":
        # Older events written before the chain existed, with gaps; chained on first open.
        path = tmp_path / "events.db"
        ids = sorted(rng.sample(range(1, EVENTS), EVENTS // 2))
        streams = write_legacy_sqlite(path, rng, ids)
        store = Store("sqlite", parse_store(str(path)))
        store.streams = streams
        recorder = store.open()
        while len(store.streams) < 3 or sum(store.streams.values()) < EVENTS:
            store.append(recorder, rng, rng.randrange(1, 5))
        yield store
        store.close()
        return
    url, schema = new_schema_url()
    store = Store("postgres", parse_store(url), schema)
    try:
        recorder = store.open()
        while sum(store.streams.values()) < EVENTS:
            store.append(recorder, rng, rng.randrange(1, 5))
            if rng.random() < 0.2:
                store.burn_ids(recorder)  # gaps in the notification ids
        yield store
    finally:
        store.close()
        drop_schema(schema)


def test_every_single_mutation_is_found_at_its_position(campaign_store: Store) -> None:
    rng = random.Random(f"campaign-{campaign_store.kind}")
    with campaign_store.tampering() as t:
        assert t.verify().ok
        ids = t.event_ids()
        assert ids != list(range(ids[0], ids[0] + len(ids)))  # the store has gaps
    found: Counter[str] = Counter()
    for number in range(MUTATIONS):
        mutate = MUTATORS[number % len(MUTATORS)]
        with campaign_store.tampering() as t:
            position, kind = mutate(t, rng)
            report = t.verify(page_size=rng.choice([5, 64, 1000]))
        assert not report.ok, (number, mutate.__name__)
        assert report.problem is not None
        got = (report.problem.position, report.problem.kind)
        assert got == (position, kind), (number, mutate.__name__, report.problem)
        assert report.head_position < position
        found[mutate.__name__] += 1
    assert sum(found.values()) == MUTATIONS
    assert set(found) == {m.__name__ for m in MUTATORS}
    with campaign_store.tampering() as t:  # every mutation was rolled back
        assert t.verify().ok
