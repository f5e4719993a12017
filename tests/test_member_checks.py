"""How long a service trusts its reading that a caller's member is still in its pole."""

from __future__ import annotations

import uuid
from types import SimpleNamespace

import pytest

from shared import auth
from shared.auth import RecentMemberChecks


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(auth, "time", SimpleNamespace(monotonic=clock))
    return clock


def test_a_member_found_still_there_is_not_read_again_until_the_recheck_time(
    clock: Clock,
) -> None:
    checks = RecentMemberChecks(recheck_seconds=2.0)
    member, other = uuid.uuid4(), uuid.uuid4()
    assert not checks.fresh(member)
    checks.remember(member)
    clock.now += 1.9
    assert checks.fresh(member)
    assert not checks.fresh(other)
    clock.now += 0.2
    assert not checks.fresh(member)


def test_no_recheck_time_reads_the_copy_on_every_request(clock: Clock) -> None:
    checks = RecentMemberChecks(recheck_seconds=0)
    member = uuid.uuid4()
    checks.remember(member)
    assert not checks.fresh(member)


def test_the_remembered_members_are_bounded(clock: Clock) -> None:
    checks = RecentMemberChecks(recheck_seconds=2.0)
    members = [uuid.uuid4() for _ in range(RecentMemberChecks.MAX_KEPT + 1)]
    for member in members:
        checks.remember(member)
    assert checks.fresh(members[-1])
    assert not checks.fresh(members[0])
    assert len(checks._checked_at) == 1
