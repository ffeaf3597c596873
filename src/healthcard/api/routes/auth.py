"""Logging in: staff and residents with a password, terminals with their SAM."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from healthcard.api import schemas as s
from healthcard.api.deps import ActorDep, NodeDep, TokensDep, client_address
from healthcard.errors import NotAuthenticated
from healthcard.platform.access import Actor
from healthcard.platform.ratelimit import RateLimits

router = APIRouter(prefix="/v1/auth", tags=["auth"])


def rate_limits(request: Request) -> RateLimits:
    found: RateLimits = request.app.state.rate_limits
    return found


LimitsDep = Annotated[RateLimits, Depends(rate_limits)]
AddressDep = Annotated[str, Depends(client_address)]


@router.post(
    "/token",
    response_model=s.TokenOut,
    summary="Log in with username and password",
    responses={429: {"description": "too many failed logins from this address: see Retry-After"}},
)
def token(
    body: s.Login, node: NodeDep, tokens: TokensDep, limits: LimitsDep, address: AddressDep
) -> s.TokenOut:
    """Staff log in with their username; residents with their ID number (the portal's username).
    Failed logins are counted per client address (``HEALTHCARD_RATE_LOGIN``): beyond the limit,
    429 until the window ends."""
    limits.check_login(address)
    try:
        actor = node.login(body.username, body.password)
    except NotAuthenticated:
        limits.login_failed(address)
        raise
    issued = tokens.issue(actor, node.clock.now())
    return s.TokenOut(access_token=issued.access_token, expires_in=issued.expires_in, role=actor.role.value)


@router.post(
    "/terminal/challenge",
    response_model=s.ChallengeOut,
    summary="A challenge for a terminal's SAM",
    responses={429: {"description": "too many challenges from this address: see Retry-After"}},
)
def challenge(body: s.ChallengeIn, node: NodeDep, limits: LimitsDep, address: AddressDep) -> s.ChallengeOut:
    limits.challenge(address)
    return s.ChallengeOut(nonce=node.terminals.challenge(body.terminal_id).hex())


@router.post("/terminal", response_model=s.TokenOut, summary="Log a terminal in with its SAM's signature")
def terminal(body: s.TerminalLogin, node: NodeDep, tokens: TokensDep) -> s.TokenOut:
    actor = node.terminal_login(
        terminal_id=body.terminal_id,
        nonce=bytes.fromhex(body.nonce),
        signature=bytes.fromhex(body.signature),
        certificate=bytes.fromhex(body.certificate) if body.certificate else None,
    )
    issued = tokens.issue(actor, node.clock.now())
    return s.TokenOut(access_token=issued.access_token, expires_in=issued.expires_in, role=actor.role.value)


@router.post("/card", response_model=s.TokenOut, summary="A resident's session from a kiosk (card + PIN)")
def card(body: s.CardLogin, node: NodeDep, actor: ActorDep, tokens: TokensDep) -> s.TokenOut:
    """Called by a self-service kiosk (logged in with its SAM) once the card is authenticated and
    its holder verified the card's PIN: the answer is the resident's own token."""
    resident = node.card_login(actor, card_number=body.card_number, chip_serial=body.chip_serial)
    issued = tokens.issue(resident, node.clock.now())
    return s.TokenOut(
        access_token=issued.access_token, expires_in=issued.expires_in, role=resident.role.value
    )


@router.get("/me", summary="Who the token says the caller is")
def me(actor: ActorDep) -> Actor:
    return actor
