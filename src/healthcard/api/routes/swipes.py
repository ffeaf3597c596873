"""A card swiped (authenticated by a terminal's SAM): presence grant + summary."""

from __future__ import annotations

from fastapi import APIRouter

from healthcard.api import schemas as s
from healthcard.api.deps import ActorDep, NodeDep
from healthcard.platform.node import Swipe

router = APIRouter(prefix="/v1/swipes", tags=["visit"])


@router.post("", summary="Record a card swipe; returns the presence grant and the summary")
def swipe(body: s.SwipeIn, node: NodeDep, actor: ActorDep) -> Swipe:
    return node.swipe(
        actor,
        card_number=body.card_number,
        chip_serial=body.chip_serial,
        stage=body.stage,
        terminal_kind=body.terminal_kind,
    )
