"""The hub's view of an agent's outbox: the highest seq up to which every entry is committed."""

from __future__ import annotations

from collectors.mqtt.ack import Confirmation, Position, extend, topic_site


def test_the_chain_moves_only_over_entries_it_has_all_of() -> None:
    assert extend(0, [(1, 0), (2, 1), (4, 3)]) == 2  # 3 is missing: 4 waits
    assert extend(2, [(4, 3), (3, 2)]) == 4  # 3 arrives: 4 joins


def test_a_pass_opening_after_trimmed_or_confirmed_entries_starts_the_chain_there() -> None:
    # The agent's oldest queued entry is 40 (older ones confirmed or trimmed): prev 0 says so.
    assert extend(0, [(41, 40), (40, 0)]) == 41


def test_copies_and_old_entries_change_nothing() -> None:
    assert extend(10, [(7, 6), (10, 9)]) == 10


def test_entries_committed_out_of_order_by_two_hubs_join_in_any_order() -> None:
    # Hubs of a shared group commit alternate entries; the store holds them unordered.
    assert extend(0, [(6, 5), (2, 1), (4, 3), (1, 0), (5, 4), (3, 2)]) == 6


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
