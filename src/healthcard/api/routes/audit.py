"""The audit chain, for auditors; the MPI review queue and merges, for its stewards."""

from __future__ import annotations

from fastapi import APIRouter

from healthcard.api import schemas as s
from healthcard.api.deps import ActorDep, NodeDep
from healthcard.platform.audit import VerifyReport
from healthcard.platform.mpi import CandidateView, MergeView

router = APIRouter(tags=["audit", "mpi"])


@router.get("/v1/audit/verify", tags=["audit"], summary="Verify every hash chain of the audit log")
def verify(node: NodeDep, actor: ActorDep) -> VerifyReport:
    return node.verify_audit(actor)


@router.get("/v1/mpi/queue", tags=["mpi"], summary="Records waiting for a reviewer's match decision")
def queue(node: NodeDep, actor: ActorDep) -> list[CandidateView]:
    return node.review_queue(actor)


@router.post("/v1/mpi/merges", tags=["mpi"], status_code=201, summary="Merge a duplicate into a survivor")
def merge(body: s.MergeIn, node: NodeDep, actor: ActorDep) -> MergeView:
    return node.merge(actor, body.survivor, body.duplicate, reason=body.reason)


@router.post("/v1/mpi/unmerges", tags=["mpi"], status_code=201, summary="Undo a merge")
def unmerge(body: s.UnmergeIn, node: NodeDep, actor: ActorDep) -> MergeView:
    return node.unmerge(actor, body.duplicate, reason=body.reason)
