"""The hub's view of an agent's outbox: the highest seq up to which every entry is committed."""

from __future__ import annotations

from collectors.mqtt.ack import Confirmation, Position, SiteChain, topic_site


def _commit(chain: SiteChain, *entries: tuple[int, int], epoch: str = "e1") -> int:
    for seq, prev in entries:
        chain.committed(Position(epoch, seq, prev))
    return chain.seq


def test_the_chain_moves_only_over_entries_it_has_all_of() -> None:
    chain = SiteChain()
    assert _commit(chain, (1, 0), (2, 1), (4, 3)) == 2  # 3 is missing: 4 waits
    assert _commit(chain, (3, 2)) == 4  # 3 arrives: 4 joins


def test_a_pass_opening_after_trimmed_or_confirmed_entries_starts_the_chain_there() -> None:
    chain = SiteChain()
    # The agent's oldest queued entry is 40 (older ones confirmed or trimmed): prev 0 says so.
    assert _commit(chain, (41, 40), (40, 0)) == 41


def test_ids_of_another_outbox_start_afresh() -> None:
    chain = SiteChain("old", 500)
    assert _commit(chain, (1, 0), (2, 1), epoch="new") == 2
    assert chain.epoch == "new"


def test_copies_and_old_entries_change_nothing() -> None:
    chain = SiteChain("e1", 10)
    assert not chain.committed(Position("e1", 7, 6))
    assert chain.seq == 10


def test_positions_and_confirmations_round_trip_and_junk_is_ignored() -> None:
    position = Position("e1", 12, 11)
    assert Position.from_properties(position.properties()) == position
    assert Position.from_properties(None) is None
    assert Position.from_properties([("meterd-seq", "x")]) is None
    confirmation = Confirmation("e1", 12, "hub")
    assert Confirmation.from_bytes(confirmation.to_bytes()) == confirmation
    assert Confirmation.from_bytes(b"{not json") is None
    assert topic_site("meterd/v1/acme-hq/SER1/reading") == "acme-hq"
    assert topic_site("meterd/v1/acme-hq/ack") is None
