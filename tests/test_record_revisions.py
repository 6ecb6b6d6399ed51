"""Revision state: outcomes, withdrawals, compactness and its changelog."""

from __future__ import annotations

import pytest

from streams.record.model import MAX_REVISION, Withdrawal, content_digest, identity_key
from streams.record.revisions import (
    CHECK_SIZE,
    ENTRY_PREFIX,
    DigestForm,
    IdentityRecord,
    IdentityState,
    Outcome,
    conflict_message,
    decode_record,
    encode_record,
)
from tests.record_helpers import rv


def test_outcomes_of_versions_in_order() -> None:
    state = IdentityState()
    v0 = rv("op", "1", killed=1)
    v1 = rv("op", "1", revision=1, killed=49)
    assert state.apply(v0).outcome is Outcome.NEW
    assert state.apply(v0).outcome is Outcome.DUPLICATE
    assert state.apply(rv("op", "1", killed=2)).outcome is Outcome.CONFLICT
    revised = state.apply(v1)
    assert (revised.outcome, revised.previous_revision) == (Outcome.REVISED, 0)
    assert state.apply(v0).outcome is Outcome.STALE
    assert state.apply(v1).outcome is Outcome.DUPLICATE
    rec = state.get("op", "1")
    assert rec is not None
    assert (rec.revision, rec.digest, rec.withdrawn) == (1, v1.digest, False)


def test_a_conflict_changes_nothing() -> None:
    state = IdentityState()
    first = rv("op", "1", killed=1)
    state.apply(first)
    decision = state.apply(rv("op", "1", killed=2))
    assert decision.outcome is Outcome.CONFLICT and decision.entry is None
    rec = state.get("op", "1")
    assert rec is not None and rec.digest == first.digest


def test_a_conflict_at_the_highest_revision_says_the_report_is_fixed_for_good() -> None:
    """A report sent at revision 2**63 - 1 is accepted, and its withdrawal, which cannot be
    higher, was refused saying only "other content"."""
    state = IdentityState()
    assert state.apply(rv("op", "1", revision=MAX_REVISION)).outcome is Outcome.NEW
    withdrawal = Withdrawal(source="op", report_id="1", revision=MAX_REVISION)
    assert state.apply(withdrawal).outcome is Outcome.CONFLICT
    assert conflict_message("op", "1", MAX_REVISION).endswith(
        "so this report can no longer be corrected or withdrawn"
    )
    assert conflict_message("op", "1", 7).endswith("needs a higher revision")


def test_withdrawal_then_reinstatement() -> None:
    state = IdentityState()
    state.apply(rv("op", "1", zone="aghdam"))
    w = state.apply(Withdrawal("op", "1", 1))
    # The zone the report was counted in: where the stage must take it out.
    assert (w.outcome, w.zone_before) == (Outcome.WITHDRAWN, "aghdam")
    assert state.apply(Withdrawal("op", "1", 1)).outcome is Outcome.DUPLICATE
    assert state.apply(rv("op", "1", revision=1)).outcome is Outcome.CONFLICT
    rec = state.get("op", "1")
    assert rec is not None and (rec.withdrawn, rec.zone) == (True, "aghdam")
    # a second withdrawal takes nothing out anywhere
    assert state.apply(Withdrawal("op", "1", 2)).zone_before is None
    again = state.apply(rv("op", "1", revision=3, zone="shusha"))
    # the zone it was withdrawn from: a reinstatement elsewhere carries its id's versions
    assert (again.outcome, again.zone_before) == (Outcome.REINSTATED, "aghdam")
    rec = state.get("op", "1")
    assert rec is not None and (rec.withdrawn, rec.zone) == (False, "shusha")
    # the state read back from its changelog entries says the same
    restored = IdentityState()
    restored.restore([e for e in [state.apply(Withdrawal("op", "1", 4)).entry] if e])
    rec = restored.get("op", "1")
    assert rec is not None and (rec.withdrawn, rec.zone) == (True, "shusha")


def test_a_withdrawal_arriving_first_makes_the_report_stale() -> None:
    state = IdentityState()
    first = state.apply(Withdrawal("op", "1", 3))
    assert (first.outcome, first.zone_before) == (Outcome.WITHDRAWN, None)
    assert state.apply(rv("op", "1", revision=2)).outcome is Outcome.STALE
    assert state.apply(rv("op", "1", revision=4)).outcome is Outcome.REINSTATED


def test_a_revision_reports_the_zone_it_moves_from() -> None:
    state = IdentityState()
    state.apply(rv("op", "1", zone="aghdam"))
    moved = state.apply(rv("op", "1", revision=1, zone="shusha"))
    assert (moved.outcome, moved.zone_before) == (Outcome.REVISED, "aghdam")


def test_revisions_are_bounded() -> None:
    with pytest.raises(ValueError):
        Withdrawal("op", "1", MAX_REVISION + 1)
    with pytest.raises(ValueError):
        rv("op", "1", revision=-1)
    state = IdentityState()
    state.apply(Withdrawal("op", "1", MAX_REVISION))
    rec = state.get("op", "1")
    assert rec is not None and rec.revision == MAX_REVISION


def test_content_digest_ignores_key_order() -> None:
    assert content_digest({"a": 1, "b": [1, 2]}) == content_digest({"b": [1, 2], "a": 1})
    assert content_digest({"a": 1}) != content_digest({"a": 2})


def test_state_is_rebuilt_from_its_changelog_entries() -> None:
    state = IdentityState()
    entries = []
    for v in (
        rv("op", "1"),
        rv("op", "2", zone="aghdam"),
        rv("op", "1", revision=5, killed=3),
        Withdrawal("op", "2", 1),
        rv("media", "x"),
        rv("op", "1"),  # stale: no entry
    ):
        d = state.apply(v)
        if d.entry is not None:
            entries.append(d.entry)
    assert len(entries) == 5
    rebuilt = IdentityState()
    assert rebuilt.restore(entries) == 5
    assert sorted(rebuilt.items()) == sorted(state.items())
    assert len(rebuilt) == len(state) == 3


def test_entry_codec_round_trips() -> None:
    rec = IdentityRecord(2**40 + 7, b"12345678", False, "lachin-corridor")
    assert decode_record(encode_record(rec)) == rec
    gone = IdentityRecord(3, b"\xff" * 8, True, None)
    assert decode_record(encode_record(gone)) == gone
    for form in DigestForm:
        rec = IdentityRecord(5, b"87654321", False, "martuni", form)
        assert decode_record(encode_record(rec)) == rec
    with pytest.raises(ValueError, match="unknown identity entry format"):
        decode_record(b"\x09rest")


def test_a_key_found_across_record_boundaries_is_not_a_match() -> None:
    # Record A's digest and revision bytes spell key B, in A's shard: only an aligned hit
    # may count, else B would read (and overwrite) the middle of A.
    key_a = b"\x01\x02" + bytes(range(14))
    digest_a = b"\x01\x02" + b"abcdef"
    rev_a = 0x0102030405060708
    key_b = digest_a + rev_a.to_bytes(8, "big")
    state = IdentityState()
    state.restore(
        [(ENTRY_PREFIX + key_a, encode_record(IdentityRecord(rev_a, digest_a, False, "z")))]
    )
    assert state.get_key(key_b) is None
    state.restore([(ENTRY_PREFIX + key_b, encode_record(IdentityRecord(1, b"B" * 8, True, None)))])
    a = state.get_key(key_a)
    b = state.get_key(key_b)
    assert a is not None and (a.revision, a.digest) == (rev_a, digest_a)
    assert b is not None and (b.revision, b.withdrawn) == (1, True)
    assert len(state) == 2


def test_identity_keys_are_16_bytes_and_distinct() -> None:
    k = identity_key("acled", "AZE123")
    assert len(k) == 16
    assert k != identity_key("acled", "AZE1234") != identity_key("acle", "dAZE123")


def test_entries_from_before_the_carried_digest_still_see_resends_as_duplicates() -> None:
    """Identity entries of format 1 hold the digest as taken before ingest carried one
    (`legacy_digest`); after an upgrade, a re-send of such a report at its revision is a
    duplicate (compared with that form), other content at that revision still a conflict."""
    v = rv("op", "1", killed=1)
    old_digest = b"L" * len(v.digest)
    legacy_entry = bytes((1, 0)) + old_digest + (0).to_bytes(8, "big") + b"shusha"
    state = IdentityState()
    state.restore([(ENTRY_PREFIX + identity_key("op", "1"), legacy_entry)])
    rec = state.get("op", "1")
    assert rec is not None and rec.form is DigestForm.LEGACY
    assert state.apply(v, lambda: old_digest).outcome is Outcome.DUPLICATE
    assert state.apply(v, lambda: b"X" * len(v.digest)).outcome is Outcome.CONFLICT
    assert state.apply(v).outcome is Outcome.CONFLICT  # no legacy form given: compared as is
    # A revision written now is in the current format, compared by its own digest.
    revised = state.apply(rv("op", "1", revision=1, killed=2))
    assert revised.entry is not None and revised.entry[1][0] == 2
    rec = state.get("op", "1")
    assert rec is not None and rec.form is DigestForm.CLASSIFIED
    assert state.apply(rv("op", "1", revision=1, killed=2), lambda: old_digest).outcome is (
        Outcome.DUPLICATE
    )


def test_the_digest_of_the_report_as_sent_decides_between_duplicate_and_conflict() -> None:
    """Given the sent digest, a re-send is a duplicate however the classifier now reads it
    (another zone, another party code: another classified digest); other content sent at
    that revision is a conflict however alike the classifier reads it."""
    v = rv("op", "1", killed=1)
    sent = b"S" * len(v.digest)
    state = IdentityState()
    first = state.apply(v, sent=sent)
    assert first.outcome is Outcome.NEW and first.entry is not None
    assert first.entry[1][0] == DigestForm.SENT  # the entry's format is its form
    rec = state.get("op", "1")
    assert rec is not None and rec.form is DigestForm.SENT and rec.digest == sent
    reclassified = rv("op", "1", killed=1, zone="martuni")
    assert reclassified.digest != v.digest
    assert state.apply(reclassified, sent=sent).outcome is Outcome.DUPLICATE
    assert state.apply(v, sent=b"T" * len(sent)).outcome is Outcome.CONFLICT
    # a document without the sent digest is not known to be the same content
    assert state.apply(v).outcome is Outcome.CONFLICT
    # a withdrawal at that revision is other content; a later one withdraws
    assert state.apply(Withdrawal("op", "1", 0)).outcome is Outcome.CONFLICT
    gone = state.apply(Withdrawal("op", "1", 1), sent=None)
    assert gone.outcome is Outcome.WITHDRAWN and gone.zone_before == v.zone
    # restored from its entries, the state compares alike
    again = IdentityState()
    assert first.entry is not None and gone.entry is not None
    again.restore([first.entry])
    assert again.apply(reclassified, sent=sent).outcome is Outcome.DUPLICATE
    again.restore([gone.entry])
    assert again.apply(Withdrawal("op", "1", 1)).outcome is Outcome.DUPLICATE


def test_entries_of_the_classified_form_compare_the_classified_digest() -> None:
    """Entries written before the sent digest (format 2) compare the version's own digest,
    whether or not a sent digest comes with it; a revision then keeps the sent form."""
    v = rv("op", "1", killed=1)
    state = IdentityState()
    state.apply(v)
    rec = state.get("op", "1")
    assert rec is not None and rec.form is DigestForm.CLASSIFIED
    assert state.apply(v, sent=b"S" * len(v.digest)).outcome is Outcome.DUPLICATE
    other = rv("op", "1", killed=2)
    assert state.apply(other, sent=b"S" * len(v.digest)).outcome is Outcome.CONFLICT
    revised = rv("op", "1", revision=1, killed=2)
    assert state.apply(revised, sent=b"R" * len(v.digest)).outcome is Outcome.REVISED
    rec = state.get("op", "1")
    assert rec is not None and rec.form is DigestForm.SENT


def test_with_the_classification_s_check_a_resend_classified_otherwise_is_reclassified() -> None:
    """Format 5: the entry keeps a check of the classified digest beside the sent one. A
    re-send the classifier now makes another document of replaces the classification (the
    zone it leaves in `zone_before`); the same again is a duplicate; other content sent at
    that revision is still a conflict; a withdrawal's re-send a duplicate."""
    v = rv("op", "1", killed=1)
    sent = b"S" * len(v.digest)
    state = IdentityState()
    first = state.apply(v, sent=sent, reclassify=True)
    assert first.entry is not None and first.entry[1][0] == 4  # with the check
    rec = state.get("op", "1")
    assert rec is not None and rec.check == v.digest[:CHECK_SIZE]
    assert state.apply(v, sent=sent, reclassify=True).outcome is Outcome.DUPLICATE
    moved = rv("op", "1", killed=1, zone="martuni")
    d = state.apply(moved, sent=sent, reclassify=True)
    assert (d.outcome, d.zone_before, d.previous_revision) == (Outcome.RECLASSIFIED, "shusha", 0)
    rec = state.get("op", "1")
    assert rec is not None and (rec.zone, rec.digest, rec.revision) == ("martuni", sent, 0)
    assert state.apply(moved, sent=sent, reclassify=True).outcome is Outcome.DUPLICATE
    assert state.apply(v, sent=b"T" * len(sent), reclassify=True).outcome is Outcome.CONFLICT
    # restored from its entries: the latest classification's check
    again = IdentityState()
    assert d.entry is not None
    again.restore([first.entry, d.entry])
    assert again.get("op", "1") == state.get("op", "1")
    assert again.apply(v, sent=sent, reclassify=True).outcome is Outcome.RECLASSIFIED
    # not asked (format 4 workers): a duplicate, as before
    assert state.apply(v, sent=sent).outcome is Outcome.DUPLICATE
    # an entry without the check (written by format 4 workers) tells a move to another
    # zone by the zone it keeps; once reclassified it keeps the check
    old = IdentityState()
    old.apply(v, sent=sent)
    d = old.apply(moved, sent=sent, reclassify=True)
    assert (d.outcome, d.zone_before, d.previous_revision) == (Outcome.RECLASSIFIED, "shusha", 0)
    rec = old.get("op", "1")
    assert rec is not None and (rec.zone, rec.check) == ("martuni", moved.digest[:CHECK_SIZE])
    assert old.apply(moved, sent=sent, reclassify=True).outcome is Outcome.DUPLICATE
    assert old.apply(v, sent=sent, reclassify=True).outcome is Outcome.RECLASSIFIED
    assert not (first.recheck or d.recheck)
    gone = state.apply(Withdrawal("op", "1", 1), sent=sent, reclassify=True)
    assert gone.outcome is Outcome.WITHDRAWN
    assert state.apply(Withdrawal("op", "1", 1), reclassify=True).outcome is Outcome.DUPLICATE
    rec4 = IdentityRecord(5, b"87654321", False, "martuni", DigestForm.SENT, b"\x01\x02\x03\x04")
    assert decode_record(encode_record(rec4)) == rec4
    with pytest.raises(ValueError, match="without its check"):
        decode_record(encode_record(rec4)[:18])


def test_an_entry_without_the_check_leaves_a_same_zone_resend_to_the_zone_stage() -> None:
    """An entry written before format 5 keeps no check of the classification, so a re-send
    in the same zone may be read otherwise (a party, a category) with nothing here to tell:
    a duplicate with `recheck`, which sends it to the zone stage to compare with the version
    counted, and the entry takes the check, so that happens once. Workers not asked to
    reclassify (format 4), entries of the classified digest's form (a changed reading is a
    conflict there) and withdrawn reports: a plain duplicate."""
    v = rv("op", "1", killed=1)
    sent = b"S" * len(v.digest)
    read_otherwise = rv("op", "1", killed=1, perpetrator="am")
    assert read_otherwise.digest != v.digest and read_otherwise.zone == v.zone
    for resent in (v, read_otherwise):
        old = IdentityState()
        old.apply(v, sent=sent)  # as format 4 workers wrote it: no check
        d = old.apply(resent, sent=sent, reclassify=True)
        assert (d.outcome, d.recheck, d.zone_before, d.previous_revision) == (
            Outcome.DUPLICATE,
            True,
            None,
            0,
        )
        assert d.entry is not None and d.entry[1][0] == 4  # now with the check
        rec = old.get("op", "1")
        assert rec is not None and (rec.check, rec.digest, rec.zone, rec.revision) == (
            resent.digest[:CHECK_SIZE],
            sent,
            "shusha",
            0,
        )
        again = old.apply(resent, sent=sent, reclassify=True)
        assert (again.outcome, again.recheck, again.entry) == (Outcome.DUPLICATE, False, None)
        restored = IdentityState()
        restored.restore([d.entry])
        assert restored.get("op", "1") == rec
    format4 = IdentityState()
    format4.apply(v, sent=sent)
    d = format4.apply(read_otherwise, sent=sent)
    assert (d.outcome, d.recheck, d.entry) == (Outcome.DUPLICATE, False, None)
    classified = IdentityState()
    classified.apply(v)  # the classified document's digest (format 2)
    d = classified.apply(v, sent=sent, reclassify=True)
    assert (d.outcome, d.recheck, d.entry) == (Outcome.DUPLICATE, False, None)
    withdrawn = IdentityState()
    withdrawn.apply(Withdrawal("op", "1", 0))
    d = withdrawn.apply(Withdrawal("op", "1", 0), reclassify=True)
    assert (d.outcome, d.recheck) == (Outcome.DUPLICATE, False)


def test_a_classification_whose_digest_begins_with_zeros_keeps_its_check() -> None:
    """1 in 2**32 classified digests begin with four zero bytes, which meant "no check": the
    entry was written with it and could not be read back, and the partition's recovery
    failed for good."""
    import dataclasses

    v = rv("op", "1", killed=1)
    zeros = dataclasses.replace(v, digest=bytes(CHECK_SIZE) + v.digest[CHECK_SIZE:])
    sent = b"S" * len(v.digest)
    state = IdentityState()
    first = state.apply(zeros, sent=sent, reclassify=True)
    assert first.entry is not None
    again = IdentityState()
    again.restore([first.entry])
    assert again.get("op", "1") == state.get("op", "1")
    for s in (state, again):
        assert s.apply(zeros, sent=sent, reclassify=True).outcome is Outcome.DUPLICATE
        assert s.apply(v, sent=sent, reclassify=True).outcome is Outcome.RECLASSIFIED
    # an entry written before the fix, its check all zero, reads back too
    written = encode_record(
        IdentityRecord(0, sent, False, "shusha", DigestForm.SENT, b"\x05\x06\x07\x08")
    )
    head = len(written) - CHECK_SIZE - len(b"shusha")
    old = written[:head] + bytes(CHECK_SIZE) + written[head + CHECK_SIZE :]
    restored = IdentityState()
    restored.restore([(ENTRY_PREFIX + identity_key("op", "1"), old)])
    assert restored.apply(zeros, sent=sent, reclassify=True).outcome is Outcome.DUPLICATE
