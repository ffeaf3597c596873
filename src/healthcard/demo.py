"""Demo cards and SAMs for ``make run`` and the tests: public demo keys, a made-up resident.

Nothing here is fit for a real card: the keys are derived from a published demo root.
"""

from __future__ import annotations

import datetime as dt
from functools import cache

from healthcard.card.cos import CardOS, CardState
from healthcard.card.personalise import CardContents, Personaliser
from healthcard.card.profile import PROFILE_32K, Profile
from healthcard.card.sam import build_sam
from healthcard.keys import certificates, sm2
from healthcard.keys.cardkeys import demo_master_keys, demo_transport_key, derive_card_keys
from healthcard.keys.primitives import sm3
from healthcard.keys.recipes import province_factor

DEMO_SERIAL = bytes.fromhex("0081866B00001015")
DEMO_SAM_SERIAL = bytes.fromhex("5341304100000001")
DEMO_TERMINAL = bytes.fromhex("410100000001")  # Henan, Zhengzhou, issuer 00, terminal 000001
DEMO_SAM_PIN = "123456"
DEMO_ROOT_INDEX = 1
DEMO_VALID_FROM = dt.date(2026, 1, 1)
DEMO_VALID_UNTIL = dt.date(2036, 12, 31)


def _demo_private(label: str) -> bytes:
    """A public, fixed demo SM2 private key: SM3 of a label (below the curve order n)."""
    return sm3(f"HealthCard demo {label}".encode())


@cache
def demo_root_public() -> bytes:
    return sm2.public_key(_demo_private("national root"))


def demo_trust() -> certificates.TrustStore:
    """The trust store of the demo national root (root key index 1)."""
    return certificates.TrustStore({DEMO_ROOT_INDEX: demo_root_public()})


@cache
def demo_issuer_certificate(issuer_code: str = "41000000001") -> bytes:
    """The demo issuer certificate (180 B) of a province card centre, from the demo root."""
    public = sm2.public_key(_demo_private(f"issuer {issuer_code}"))
    return certificates.issue_issuer_certificate(
        _demo_private("national root"),
        DEMO_ROOT_INDEX,
        issuer_code,
        public,
        DEMO_VALID_FROM,
        DEMO_VALID_UNTIL,
        1,
    )


@cache
def _demo_sam_certificate(serial: bytes, terminal: bytes) -> bytes:
    public = sm2.public_key(_demo_private(f"SAM {serial.hex()}"))
    return certificates.issue_sam_certificate(
        _demo_private("national root"),
        DEMO_ROOT_INDEX,
        serial,
        terminal,
        public,
        DEMO_VALID_FROM,
        DEMO_VALID_UNTIL,
        2,
    )


def tiny_jpeg() -> bytes:
    """A 1-inch-photo stand-in: a real (tiny) JPEG, so readers can show it."""
    # smallest baseline JPEG: 1×1 grey pixel (hand-checked to decode with any JPEG reader)
    return bytes.fromhex(
        "FFD8FFE000104A46494600010100000100010000FFDB004300080606070605080707070909080A0C140D0C0B0B0C1912130F"
        "141D1A1F1E1D1A1C1C20242E2720222C231C1C2837292C30313434341F27393D38323C2E333432FFC0000B080001000101011100"
        "FFC4001F0000010501010101010100000000000000000102030405060708090A0BFFC400B5100002010303020403050504040000"
        "017D01020300041105122131410613516107227114328191A1082342B1C11552D1F02433627282090A161718191A25262728292A"
        "3435363738393A434445464748494A535455565758595A636465666768696A737475767778797A838485868788898A9293949596"
        "9798999AA2A3A4A5A6A7A8A9AAB2B3B4B5B6B7B8B9BAC2C3C4C5C6C7C8C9CAD2D3D4D5D6D7D8D9DAE1E2E3E4E5E6E7E8E9EAF1F2"
        "F3F4F5F6F7F8F9FAFFDA0008010100003F00FBD3FFD9"
    )


def demo_contents(issue_date: dt.date = dt.date(2026, 11, 23)) -> CardContents:
    """张三 from Zhengzhou, with the data a collection point would have taken."""
    expiry = issue_date.replace(year=issue_date.year + 10)
    return CardContents(
        items={
            "DDF1/EF05": {
                "card_category": "1",
                "spec_version": "V1.1",
                "issuer_name": "河南省卫生健康委员会",
                "issuer_code": "41000000001",
                "issue_date": issue_date.strftime("%Y%m%d"),
                "card_number": "410102199003070019",
                "security_code": "000",
                "issue_serial": "4101000001",
                "city_code": "410100",
            },
            "DDF1/EF06": {
                "name": "张三",
                "sex": 1,
                "ethnicity": "01",
                "birth_date": "19900307",
                "citizen_id": "410102199003070019",
            },
            "DDF1/EF08": {
                "expiry_date": expiry.strftime("%Y%m%d"),
                "phone1": "13800138000",
                "payment_method1": "03",
            },
            "DF01/EF05": {"address_type1": "1", "address1": "河南省郑州市中原区建设路100号"},
            "DF01/EF06": {"contact_name1": "李四", "contact_relation1": "1", "contact_phone1": "13900139000"},
            "DF01/EF07": {"education": "20", "marital_status": "20", "occupation": "2"},
            "DF01/EF08": {
                "id_type": "01",
                "id_number": "410102199003070019",
                "health_record_number": "41010200100100001",
                "ncms_number": "410102000001",
            },
            "DF02/EF05": {
                "abo": 1,
                "rh": "1",
                "asthma": 0,
                "heart_disease": 0,
                "diabetes": 1,
                "other_alert": "高血压",
            },
            "DF02/EF06": {"psychiatric": 0},
        },
        photo=tiny_jpeg(),
        allergies=[("青霉素", "皮疹、呼吸困难")],
        immunizations=[("乙肝疫苗(第2剂)", "19900407"), ("卡介苗", "19900308")],
    )


def issue_demo_card(
    serial: bytes = DEMO_SERIAL, contents: CardContents | None = None, profile: Profile = PROFILE_32K
) -> CardState:
    """A blank chip personalised by APDUs with demo keys; returns its state (ISSUED)."""
    contents = contents or demo_contents()
    city = str(contents.value("DDF1", "EF05", "city_code") or "410100")
    transport = demo_transport_key(serial)
    state = CardState.blank(serial, transport)
    card = CardOS(state)
    card.power_on()
    keys = derive_card_keys(demo_master_keys(), serial, province_factor(city))
    Personaliser(card.process, transport).run(profile, keys, contents)
    state.profile = profile.id
    return state


def demo_sam(serial: bytes = DEMO_SAM_SERIAL) -> CardState:
    """An issuer SAM holding the demo level-1 keys (version 1), a demo SM2 signing key and its
    certificate from the demo root."""
    return build_sam(
        serial,
        demo_master_keys(),
        DEMO_TERMINAL,
        DEMO_SAM_PIN,
        issuer_certificate=demo_issuer_certificate(),
        sam_certificate=_demo_sam_certificate(serial, DEMO_TERMINAL),
        sign_key=_demo_private(f"SAM {serial.hex()}"),
    )


__all__ = [
    "demo_contents",
    "demo_issuer_certificate",
    "demo_sam",
    "demo_trust",
    "issue_demo_card",
    "tiny_jpeg",
]
