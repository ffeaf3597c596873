"""The life cycle's statuses and the database's constraints name the same sets."""

from __future__ import annotations

import pytest

from healthcard.errors import PermissionDenied, TransitionRefused
from healthcard.issuance.lifecycle import Action, ApplicationStatus, CardStatus, require_role, step
from healthcard.storage.tables import LIVE_CARD, OPEN_APPLICATION


def test_the_unique_indexes_cover_the_live_statuses() -> None:
    assert {s.value for s in CardStatus if s.live} == set(LIVE_CARD)
    assert {ApplicationStatus.SUBMITTED.value, ApplicationStatus.APPROVED.value} == set(OPEN_APPLICATION)


def test_steps_and_roles() -> None:
    assert step(Action.REPORT_LOST, "ACTIVE", "x") is CardStatus.LOST
    with pytest.raises(TransitionRefused, match="CANCELLED"):
        step(Action.RECOVER, "CANCELLED", "x")
    with pytest.raises(PermissionDenied, match="clerk"):
        require_role(Action.CANCEL, "clerk", "wang")
    with pytest.raises(PermissionDenied, match="unknown role"):
        require_role(Action.CANCEL, "root", "x")
