"""The scripted demo of ``make run``: the key hierarchy from ceremony to a signed visit record.

Everything lands in ``<data>/demo/`` (recreated each run): the key store (sealed under the demo
passphrase, or ``HEALTHCARD_KEYSTORE_PASSPHRASE``), the SAM and card images (keys sealed), the
trust store (public keys only).  No key is ever written in clear — a test scans the folder.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import shutil
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from healthcard import demo
from healthcard.card import image
from healthcard.card.cos import CardOS, CardState
from healthcard.card.personalise import CardContents
from healthcard.card.sam import SamOS
from healthcard.cli.cardcentre import print_history
from healthcard.cli.render import card_tables, outpatient_table, print_tables
from healthcard.clock import SystemClock, local_date
from healthcard.errors import HotListed, InvalidValue
from healthcard.issuance import seed
from healthcard.issuance.batch import run_batch
from healthcard.issuance.cardcentre import CardCentre
from healthcard.issuance.cards import issue_simulated_card
from healthcard.issuance.chips import SimulatedChips
from healthcard.issuance.keycentre import KeyCentre, SamRequest, terminal_number
from healthcard.issuance.organisation import Organisation
from healthcard.keys import ceremony
from healthcard.keys.kek import PassphraseKek
from healthcard.keys.keystore import KeyStore
from healthcard.storage.db import Database
from healthcard.terminal import hotlist
from healthcard.terminal.records import Code, Diagnosis, Fee, Medication, OutpatientRecord
from healthcard.terminal.sdk import HealthCardTerminal
from healthcard.terminal.transport import SimulatorTransport

HENAN_CARD = bytes.fromhex("0081866B00001015")
GUANGDONG_CARD = bytes.fromhex("008586530002E8E4")
FOSHAN_SAM = bytes.fromhex("4406000000000001")
FOSHAN_TERMINAL = "440600000001"
CARD = "410102199003070019"  # 张三


def _guangdong_contents() -> CardContents:
    contents = demo.demo_contents()
    contents.items["DDF1/EF05"].update(
        {
            "issuer_name": "广东省卫生健康委员会",
            "issuer_code": "44000000001",
            "card_number": "440604198805120027",
            "issue_serial": "4406000001",
            "city_code": "440600",
        }
    )
    contents.items["DDF1/EF06"].update(
        {"name": "李娜", "sex": 2, "birth_date": "19880512", "citizen_id": "440604198805120027"}
    )
    contents.items["DF01/EF08"].update({"id_number": "440604198805120027", "ncms_number": ""})
    contents.items["DF01/EF05"] = {"address_type1": "1", "address1": "广东省佛山市禅城区岭南大道1号"}
    return contents


def _terminal(
    card: CardState, sam: CardState, centre: KeyCentre, on_change: Callable[[CardState], None] | None = None
) -> HealthCardTerminal:
    terminal = HealthCardTerminal(
        SimulatorTransport(CardOS(card, on_change=on_change)),
        SimulatorTransport(SamOS(sam)),
        trust=centre.trust_store(),
    )
    terminal.open()
    return terminal


def run(console: Console, data_dir: Path) -> None:
    folder = data_dir / "demo"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    clock = SystemClock()
    sealer = image.Sealer(os.environ.get("HEALTHCARD_IMAGE_PASSPHRASE") or image.DEMO_PASSPHRASE)
    passphrase = os.environ.get("HEALTHCARD_KEYSTORE_PASSPHRASE") or image.DEMO_PASSPHRASE

    console.rule("1. key ceremony: three custodians make the national level-1 keys")
    store = KeyStore.create(folder / "keystore.json", PassphraseKek(passphrase), clock)
    centre = KeyCentre(store, clock)
    _, parts = ceremony.generate(3)
    for part in parts:
        console.print(f"custodian {part.index}: component {part.text()}  KCV {part.kcv}", highlight=False)
    national = centre.ceremony(ceremony.combine(parts, 3))
    console.print(f"{national.id} stored in {store.path} ({store.kek.label}); national SM2 root CA made")

    console.rule("2. province keys K2 = D(K1, 'PP000000') for Henan (41) and Guangdong (44)")
    provinces = {code: centre.derive_province(code) for code in ("41", "44")}
    table = Table("set", "RK1DDF1 KCV", "UK1DF03 KCV", "issuer certificate")
    for code, keyset in provinces.items():
        kcv = keyset.kcvs()
        table.add_row(str(keyset.id), kcv["RK1DDF1"], kcv["UK1DF03"], f"{code}000000001 (180 B)")
    console.print(table)
    (folder / "trust.json").write_text(json.dumps(centre.trust_store().to_dict(), indent=1), encoding="utf-8")

    console.rule("3. a terminal SAM in Foshan holding only the national keys")
    sam = centre.sam(SamRequest(FOSHAN_SAM, terminal_number(FOSHAN_TERMINAL)))
    image.save(sam, folder / "sam-foshan.img.json", sealer)
    console.print(f"SAM {FOSHAN_SAM.hex().upper()} · terminal {FOSHAN_TERMINAL} · {sam.key_info()}")

    console.rule("4. issue a card in each province from its own K2")
    cards = {
        "41": issue_simulated_card(centre, provinces["41"], HENAN_CARD, demo.demo_contents()),
        "44": issue_simulated_card(centre, provinces["44"], GUANGDONG_CARD, _guangdong_contents()),
    }
    for code, state in cards.items():
        image.save(state, folder / f"card-{code}.img.json", sealer)
        console.print(
            f"province {code}: chip {state.serial.hex().upper()} · {state.profile} · {state.key_info()}"
        )

    console.rule("5. the Henan card at the Foshan terminal: every file")
    path = folder / "card-41.img.json"
    terminal = _terminal(cards["41"], sam, centre, lambda s: image.save(s, path, sealer))
    print_tables(console, card_tables(terminal, terminal.profile))
    other = _terminal(cards["44"], sam, centre)
    console.print(f"the Guangdong card at the same terminal: {other.read_holder().name}, {other.city_code}")

    console.rule("6. write an outpatient visit, signed by the SAM")
    record = OutpatientRecord(
        institution_name="佛山市第一人民医院",
        institution_code="45560001X",
        visit_time=dt.datetime(2026, 11, 23, 9, 30),
        outpatient_no="MZ20261123001",
        department="呼吸内科",
        payment_method=Code("03", None),
        diagnoses=[Diagnosis("咳嗽", "R05", dt.date(2026, 11, 23), "急性支气管炎", "J20.9")],
        medications=[Medication("阿莫西林胶囊", "5", "每日3次", "g", "0.5", "01")],
        fees=[Fee("挂号费", "1", 1000), Fee("西药费", "2", 3650)],
    )
    slot = terminal.write_outpatient_record(record)
    console.print(f"written to ED{slot:02d} with the SAM's SM2 signature and certificate")

    console.rule("7. read it back from the saved image and verify the signature")
    again = _terminal(image.load(path, sealer), sam, centre)
    console.print(outpatient_table(again.read_outpatient(slot)))
    signer = again.verify_visit("ED", slot, local_date(clock))
    console.print(
        f"signature valid: SAM {signer.subject_id.hex().upper()}, terminal {signer.terminal_number.hex()}"
    )

    console.rule("8. key rollover: national v2; the v1 cards still work at a new SAM")
    national2 = centre.ceremony(ceremony.generate(3)[0])
    centre.derive_province("41")
    sam2 = centre.sam(SamRequest(bytes.fromhex("4406000000000002"), terminal_number("440600000002")))
    image.save(sam2, folder / "sam-foshan-2.img.json", sealer)
    new_card = issue_simulated_card(
        centre, centre.province("41"), bytes.fromhex("0081866B00001016"), demo.demo_contents()
    )
    image.save(new_card, folder / "card-41-v2.img.json", sealer)
    for label, state in (("v1 card", image.load(path, sealer)), ("v2 card", new_card)):
        name = _terminal(state, sam2, centre).read_holder().name
        console.print(
            f"{label} ({state.key_info().version}) at the SAM holding {sam2.key_info()}: read {name}"
        )
    console.print(f"{national2.id} is current")

    card_centre(console, folder, centre, sam2, sealer)
    console.print(f"every file under {folder} holds keys only sealed")
    console.print("[green]demo complete[/green]")


def card_centre(
    console: Console, folder: Path, keys: KeyCentre, sam: CardState, sealer: image.Sealer
) -> None:
    """Sections 9–11: the card centre on the embedded SQLite database."""
    console.rule("9. the card centre (卡管) on SQLite: 200 residents of Zhengzhou and Hebi, batch issuance")
    clock = keys.clock
    db = Database(f"sqlite:///{folder / 'healthcard.db'}")
    db.upgrade()
    Organisation(db).ensure_demo()
    centre = CardCentre(db, clock, lambda: keys)
    source = folder / "residents.csv"
    seed.write_csv(seed.generate_applications(200, rng=random.Random(2026), today=local_date(clock)), source)
    tray = SimulatedChips(folder / "cards", sealer, durable_each=False)
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("集中发卡", total=200)
        report = run_batch(
            centre,
            "demo-admin-41",
            source,
            tray,
            errors=folder / "residents.errors.csv",
            progress=lambda done, total: progress.update(task, completed=done, total=total),
        )
    console.print(
        f"{report.issued} cards personalised from {source.name} → {tray.out}; refused {report.refused}"
    )

    console.rule("10. 张三 applies, gets his card, loses it, gets a replacement")
    contents = demo.demo_contents()
    app = {
        "name": "张三",
        "sex": 1,
        "ethnicity": "01",
        "birth_date": "1990-03-07",
        "id_type": "01",
        "id_number": CARD,
        "photo": demo.tiny_jpeg(),
        "city_code": "410100",
        "addresses": [("1", str(contents.value("DF01", "EF05", "address1")))],
        "phones": ["13800138000"],
        "abo": 1,
        "rh": "1",
        "diabetes": True,
        "other_alert": "高血压",
        "allergies": [("青霉素", "皮疹、呼吸困难")],
        "immunizations": [("乙肝疫苗(第2剂)", "1990-04-07")],
    }
    try:
        centre.submit("demo-clerk-41", {**app, "id_number": "410102199003070018"})
    except InvalidValue as refused:
        console.print(f"[yellow]refused[/yellow] {refused}", highlight=False)
    submitted = centre.submit("demo-clerk-41", app, collection_point="410102-01")
    centre.approve("demo-admin-41", submitted.number)
    card = centre.issue("demo-admin-41", submitted.number, SimulatedChips(folder / "cards", sealer))
    centre.activate("demo-clerk-41", CARD)
    try:
        centre.submit("demo-clerk-41", app)
    except InvalidValue as refused:
        console.print(f"[yellow]refused[/yellow] {refused}", highlight=False)
    centre.report_lost("demo-clerk-41", CARD, "lost on bus 906")
    new = centre.replace("demo-admin-41", CARD, SimulatedChips(folder / "cards", sealer), "lost")
    print_history(centre.card(CARD))

    console.rule("11. the hot list at the terminal: the lost chip refused, the new one read")
    signed = centre.hotlist("41")
    (folder / "hotlist-41.json").write_bytes(hotlist.encode(signed))
    listed = hotlist.TerminalHotList()
    listed.load(hotlist.encode(signed), trust=keys.trust_store(), today=local_date(clock))
    console.print(
        f"hot list of province 41 v{signed.version}: {len(signed.added)} chip(s), signed by the province card centre"
    )
    old_state = image.load(folder / "cards" / f"{card.chip_serial}.card", sealer)
    new_state = image.load(folder / "cards" / f"{new.chip_serial}.card", sealer)
    try:
        HealthCardTerminal(
            SimulatorTransport(CardOS(old_state)), SimulatorTransport(SamOS(sam)), hotlist=listed
        ).open()
    except HotListed as refused:
        console.print(f"[red]refused[/red] {refused}", highlight=False)
    terminal = HealthCardTerminal(
        SimulatorTransport(CardOS(new_state)), SimulatorTransport(SamOS(sam)), hotlist=listed
    )
    terminal.open()
    alerts = terminal.read_medical_alerts()
    console.print(
        f"new chip {new.chip_serial}: {terminal.read_holder().name}, card {terminal.read_issuer().card_number}, "
        f"allergy {terminal.read_allergies()[0].allergen}, alerts {', '.join(alerts.present)} {alerts.other}",
        highlight=False,
    )
    db.dispose()
