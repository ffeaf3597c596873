"""Public health by area: children due or overdue, coverage by vaccine."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from healthcard.api.deps import ActorDep, NodeDep
from healthcard.platform.immunization import CoverageRow, DueEntry

router = APIRouter(prefix="/v1/areas", tags=["public health"])

Area = Annotated[str, Path(pattern=r"^\d{2}(\d{2}){0,2}$", description="GB/T 2260 prefix: 2, 4 or 6 digits")]


@router.get("/{area_code}/immunizations/due", summary="Children of the area due or overdue for a dose")
def due(area_code: Area, node: NodeDep, actor: ActorDep) -> list[DueEntry]:
    return node.due_in_area(actor, area_code)


@router.get("/{area_code}/immunizations/coverage", summary="Coverage by vaccine and dose")
def coverage(area_code: Area, node: NodeDep, actor: ActorDep) -> list[CoverageRow]:
    return node.coverage(actor, area_code)
