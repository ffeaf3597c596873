"""What a route needs from the request: the node and the caller (STYLE.md habit 11: routes are
thin; they turn HTTP into a call of :class:`~healthcard.platform.node.Node` and back)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from healthcard.api.tokens import Tokens
from healthcard.errors import NotAuthenticated
from healthcard.platform.access import Actor
from healthcard.platform.node import Node

_bearer = HTTPBearer(auto_error=False, description="an access token from /v1/auth/token or /v1/auth/terminal")


def node(request: Request) -> Node:
    found: Node = request.app.state.node
    return found


def tokens(request: Request) -> Tokens:
    found: Tokens = request.app.state.tokens
    return found


def actor(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Actor:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise NotAuthenticated("log in first: send 'Authorization: Bearer <token>'")
    the_node: Node = request.app.state.node
    return tokens(request).actor(credentials.credentials, the_node.clock.now())


def client_address(request: Request) -> str:
    """Who a rate limit counts: the client's address (behind a proxy: ``uvicorn
    --proxy-headers`` puts the forwarded one here).  The API's and the web's logins share it."""
    return request.client.host if request.client else "unknown"


NodeDep = Annotated[Node, Depends(node)]
ActorDep = Annotated[Actor, Depends(actor)]
TokensDep = Annotated[Tokens, Depends(tokens)]

#: a FHIR search by patient: ``?patient=<resident id>`` (or ``Patient/<id>``) and ``_count``
PatientQuery = Annotated[str, Query(min_length=1, max_length=40, description="the resident id (Patient.id)")]
CountQuery = Annotated[int, Query(alias="_count", ge=1, le=200)]
KeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=64,
        description="makes the call exactly-once: a retry with the same key returns the first result",
    ),
]
