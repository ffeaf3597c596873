"""The one composition root (STYLE.md habit 4): settings in, a wired application out.

The CLI, the API and the tests build everything through :func:`bootstrap`; only here are the
concrete adapters chosen (SQLite or PostgreSQL, the key store and its KEK, the clock).
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from healthcard.card import image
from healthcard.clock import SHANGHAI, Clock, SystemClock
from healthcard.errors import InvalidValue
from healthcard.federation import Bus, open_bus
from healthcard.federation.nodes import CityAnnouncer, FederationRunner, NodeIdentity, NodeRole
from healthcard.federation.queries import Answer
from healthcard.federation.regions import wire_regions
from healthcard.federation.settlement import wire_settlement
from healthcard.issuance.cardcentre import CardCentre
from healthcard.issuance.chips import ChipSource, SimulatedChips
from healthcard.issuance.keycentre import KeyCentre
from healthcard.keys.certificates import TrustStore
from healthcard.keys.kek import DEFAULT_MODULE, Kek, open_kek
from healthcard.keys.keystore import KeyStore
from healthcard.platform.carddesk import CardDesk
from healthcard.platform.node import Node
from healthcard.platform.records import EncounterView
from healthcard.settings import Settings
from healthcard.storage.db import Database
from healthcard.storage.uow import UnitOfWork


@dataclass
class App:
    settings: Settings
    clock: Clock
    db: Database
    cards: CardCentre
    node: Node = field(repr=False)
    #: the card centre for the platform's logged-in people (card administrators, the holder)
    card_desk: CardDesk = field(repr=False, default=None)  # type: ignore[assignment]  # set by bootstrap
    #: where this process personalises cards (the card centre's pages): the card tray; None: none
    chips: Callable[[], ChipSource] | None = field(repr=False, default=None)
    #: what this node is in the three-level platform (HEALTHCARD_NODE_ROLE / _CODE)
    identity: NodeIdentity = field(default=NodeIdentity(NodeRole.CITY))
    #: the bus to the other nodes (a node with a code); None: a lone city (the embedded default
    #: without a code), which announces and asks nothing
    bus: Bus | None = field(repr=False, default=None)
    #: the questions this node answers other nodes (q.<code>.<name>), added by the wiring of each
    #: capability (cross-region care, settlement); served by :func:`federation_runner`'s runner
    answers: dict[str, Answer] = field(repr=False, default_factory=dict)

    def close(self) -> None:
        self.db.dispose()


def load_trust(settings: Settings) -> TrustStore:
    """The national roots the platform trusts (public keys only): the trust file when there is
    one, else none (terminals cannot register until the key centre exports its roots)."""
    path = settings.trust_path
    if not path.exists():
        return TrustStore()
    return TrustStore.from_dict(json.loads(path.read_text(encoding="utf-8")))


def bootstrap(
    settings: Settings | None = None,
    *,
    clock: Clock | None = None,
    kek: Callable[[], Kek] | None = None,
    key_centre: Callable[[], KeyCentre] | None = None,
    require_schema: bool = True,
    chips: Callable[[], ChipSource] | None = None,
    bus: Bus | None = None,
) -> App:
    """Wire the application.  ``kek`` opens the key store's KEK when a key is first needed
    (personalisation, hot-list signing); ``key_centre`` replaces the whole key centre (tests).
    ``require_schema``: refuse to start on a database that is not at the current migration.
    ``chips``: where the card centre's pages personalise cards (default: :func:`card_tray`).
    ``bus``: the bus to the other nodes (default: ``open_bus(HEALTHCARD_NATS_URL)`` for a node
    with a code — NATS, or this process's in-process bus; tests give their own)."""
    settings = settings or Settings.from_env()
    clock = clock or SystemClock()
    db = Database(settings.db_url)
    if require_schema:
        db.require_current()

    def open_centre() -> KeyCentre:
        if key_centre is not None:
            return key_centre()
        if kek is None:
            raise RuntimeError("bootstrap() was given no KEK: the key store cannot be opened")
        return KeyCentre(KeyStore.open(settings.keystore_path, kek(), clock), clock)

    # no secret configured: a fresh one, good for this process only (tests, one-off CLI calls)
    secret = settings.token_secret or secrets.token_bytes(32)
    node = Node(
        db,
        clock,
        token_secret=secret,
        trust=load_trust(settings),
        audit_archive_dir=settings.audit_archive_path,
    )
    cards = CardCentre(db, clock, open_centre, card_data=node.card_data)
    identity = NodeIdentity.of(settings.node_role, settings.node_code)
    if identity.code is not None and bus is None:
        bus = open_bus(settings.nats_url)
    answers: dict[str, Answer] = {}
    if identity.announces:
        wire_city(identity, clock, cards, node)
        if bus is not None:
            answers |= wire_cross_region(identity, node, bus)
            answers |= wire_settlement(identity, node.settlement, db, clock, bus)
    desk = CardDesk(
        cards, db, clock, access=node.access, audit=node.audit, mpi=node.mpi, terminals=node.terminals
    )
    return App(settings, clock, db, cards, node, desk, chips or card_tray(settings), identity, bus, answers)


def federation_runner(app: App, *, ack_wait: float = 30.0) -> FederationRunner | None:
    """The node's messaging (relay, its role's consumers, the queries it answers: its role's
    and ``app.answers``), not started; None for a node without a code (it has no bus)."""
    if app.bus is None or app.identity.code is None:
        return None
    return FederationRunner(app.db, app.bus, app.clock, app.identity, ack_wait=ack_wait, answers=app.answers)


def wire_city(identity: NodeIdentity, clock: Clock, cards: CardCentre, node: Node) -> None:
    """A city node with a code announces, in each change's own transaction, its card events and
    its closed visits to its province (healthcard.federation.nodes)."""
    assert identity.code is not None
    announcer = CityAnnouncer(identity.code, clock)
    cards.on_card_change = announcer.cards

    def closed(uow: UnitOfWork, view: EncounterView) -> None:
        announcer.record(
            uow,
            view.resident_id,
            view.id,
            kind=view.kind,
            day=(view.ended_at or view.started_at).astimezone(SHANGHAI).date(),
            institution_code=view.institution_code,
        )

    node.records.on_closed = closed


def wire_cross_region(identity: NodeIdentity, node: Node, bus: Bus) -> dict[str, Answer]:
    """Cross-region care for a city node with a code (healthcard.federation.regions): a card not
    found here is looked up at its home (``node.regions``), a visitor's visit closed here also
    goes home (``x.<home>.visit``, in the visit's transaction, after the province's pointer), and
    the questions other cities ask about this city's cards (``q.<city>.swipe|glance|summary``)
    are answered — returned, for the node's runner to serve."""
    assert identity.code is not None
    regions, answers = wire_regions(node, bus, identity.code)
    announced = node.records.on_closed

    def closed(uow: UnitOfWork, view: EncounterView) -> None:
        if announced is not None:
            announced(uow, view)
        regions.visit_closed(uow, view)

    node.records.on_closed = closed
    return answers


def card_tray(settings: Settings) -> Callable[[], ChipSource] | None:
    """The card tray of ``HEALTHCARD_CARD_TRAY`` (simulated chips; each personalised card saved
    there as ``<chip serial>.card``, sealed with ``HEALTHCARD_IMAGE_PASSPHRASE`` — the demo's
    when unset, as ``healthcard issue`` does), or None when none is configured."""
    folder = settings.card_tray
    if folder is None:
        return None
    passphrase = os.environ.get("HEALTHCARD_IMAGE_PASSPHRASE") or image.DEMO_PASSPHRASE
    return lambda: SimulatedChips(folder, image.Sealer(passphrase))


def kek_from_environment(settings: Settings) -> Callable[[], Kek]:
    """The key store's KEK from the environment alone (a server has no terminal to ask on):
    ``HEALTHCARD_KEYSTORE_PASSPHRASE``, or the PKCS#11 token of ``HEALTHCARD_PKCS11_*``.  Opened
    when a key is first needed; missing, that use is refused with what to set."""

    def open_it() -> Kek:
        if settings.kek == "pkcs11":
            pin = os.environ.get("HEALTHCARD_PKCS11_PIN")
            if not pin:
                raise InvalidValue("HEALTHCARD_PKCS11_PIN", "the HSM user PIN, for the key store")
            return open_kek(
                "pkcs11",
                module=os.environ.get("HEALTHCARD_PKCS11_MODULE", DEFAULT_MODULE),
                token=os.environ.get("HEALTHCARD_PKCS11_TOKEN", "healthcard"),
                pin=pin,
            )
        passphrase = os.environ.get("HEALTHCARD_KEYSTORE_PASSPHRASE")
        if not passphrase:
            raise InvalidValue("HEALTHCARD_KEYSTORE_PASSPHRASE", "the key store's passphrase is not set")
        return open_kek("passphrase", passphrase=passphrase)

    return open_it
