"""The audit chain, for auditors; the MPI review queue and merges, for its stewards."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from healthcard.api import schemas as s
from healthcard.api.deps import ActorDep, NodeDep
from healthcard.platform.audit import VerifyReport
from healthcard.platform.mpi import CandidateView, MergeView

router = APIRouter()


@router.get("/v1/audit/verify", tags=["audit"], summary="Verify every hash chain of the audit log")
def verify(node: NodeDep, actor: ActorDep) -> VerifyReport:
    return node.verify_audit(actor)


@router.get("/v1/mpi/queue", tags=["mpi"], summary="Records waiting for a reviewer's match decision")
def queue(node: NodeDep, actor: ActorDep) -> list[CandidateView]:
    return node.review_queue(actor)


@router.post("/v1/mpi/candidates", tags=["mpi"], status_code=201, summary="A record that came without a card")
def submit(body: s.CandidateIn, node: NodeDep, actor: ActorDep) -> CandidateView:
    return node.submit_candidate(actor, **body.model_dump())


@router.post("/v1/mpi/candidates/{candidate_id}/decision", tags=["mpi"], summary="Link, create or reject")
def decide(
    candidate_id: Annotated[int, Path(ge=1, le=2**62)], body: s.DecisionIn, node: NodeDep, actor: ActorDep
) -> CandidateView:
    return node.decide_candidate(
        actor, candidate_id, decision=body.decision, resident_id=body.resident_id, reason=body.reason
    )


@router.get("/v1/mpi/residents/{resident_id}/merges", tags=["mpi"], summary="Merge history of a resident")
def merges(
    resident_id: Annotated[str, Path(pattern=r"^[0-9A-Za-z_-]{1,32}$")], node: NodeDep, actor: ActorDep
) -> list[MergeView]:
    return node.merge_history(actor, resident_id)


@router.post("/v1/mpi/merges", tags=["mpi"], status_code=201, summary="Merge a duplicate into a survivor")
def merge(body: s.MergeIn, node: NodeDep, actor: ActorDep) -> MergeView:
    return node.merge(actor, body.survivor, body.duplicate, reason=body.reason)


@router.post("/v1/mpi/unmerges", tags=["mpi"], status_code=201, summary="Undo a merge")
def unmerge(body: s.UnmergeIn, node: NodeDep, actor: ActorDep) -> MergeView:
    return node.unmerge(actor, body.duplicate, reason=body.reason)
