"""Logging in: staff and residents with a password, terminals with their SAM."""

from __future__ import annotations

from fastapi import APIRouter

from healthcard.api import schemas as s
from healthcard.api.deps import ActorDep, NodeDep, TokensDep
from healthcard.platform.access import Actor

router = APIRouter(prefix="/v1/auth", tags=["auth"])


@router.post("/token", response_model=s.TokenOut, summary="Log in with username and password")
def token(body: s.Login, node: NodeDep, tokens: TokensDep) -> s.TokenOut:
    """Staff log in with their username; residents with their ID number (the portal's username)."""
    with node.db.uow() as uow:
        try:
            account = node.accounts.authenticate(uow, body.username, body.password)
        finally:
            uow.commit()  # the failure count is kept even when the login is refused
        actor = account.actor()
        node.audit.record(
            uow, actor, action="login", what="login", why="password", resident_id=account.resident_id
        )
        uow.commit()
    issued = tokens.issue(actor, node.clock.now())
    return s.TokenOut(access_token=issued.access_token, expires_in=issued.expires_in, role=actor.role.value)


@router.post("/terminal/challenge", response_model=s.ChallengeOut, summary="A challenge for a terminal's SAM")
def challenge(body: s.ChallengeIn, node: NodeDep) -> s.ChallengeOut:
    return s.ChallengeOut(nonce=node.terminals.challenge(body.terminal_id).hex())


@router.post("/terminal", response_model=s.TokenOut, summary="Log a terminal in with its SAM's signature")
def terminal(body: s.TerminalLogin, node: NodeDep, tokens: TokensDep) -> s.TokenOut:
    with node.db.uow() as uow:
        view = node.terminals.login(
            uow,
            terminal_id=body.terminal_id,
            nonce=bytes.fromhex(body.nonce),
            signature=bytes.fromhex(body.signature),
        )
    actor = view.actor()
    issued = tokens.issue(actor, node.clock.now())
    return s.TokenOut(access_token=issued.access_token, expires_in=issued.expires_in, role=actor.role.value)


@router.get("/me", summary="Who the token says the caller is")
def me(actor: ActorDep) -> Actor:
    return actor
