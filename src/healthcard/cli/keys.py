"""``healthcard keys …`` and ``healthcard sam …``: the key custodians' commands.

Secrets are typed at hidden prompts or read from the environment, shown only where a ceremony
must show them (a component, once, to its custodian), and kept in the key store otherwise.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.panel import Panel
from rich.table import Table

from healthcard.card import image
from healthcard.cli.common import (
    KekOption,
    StoreOption,
    console,
    default_store,
    fail,
    kek_from_env,
    open_centre,
)
from healthcard.errors import HealthCardError, InvalidValue
from healthcard.issuance.keycentre import KeyCentre, SamRequest, terminal_number
from healthcard.keys import ceremony as ceremonies
from healthcard.keys import ehc, exchange
from healthcard.keys.kek import DEFAULT_KEY_LABEL, DEFAULT_MODULE, create_pkcs11_kek, open_kek
from healthcard.keys.keyset import KeySet, province_code
from healthcard.keys.primitives import Algorithm
from healthcard.keys.recipes import diversify, key_check_value
from healthcard.keys.table import Holder

keys_app = typer.Typer(
    help="Key hierarchy: ceremony, province keys, exchange, rollover, vectors.", no_args_is_help=True
)
sam_app = typer.Typer(help="SAM cards for terminals.", no_args_is_help=True)

ALGORITHMS = {"sm4": Algorithm.SM4, "3des": Algorithm.TDES}
ComponentsOption = Annotated[int, typer.Option(help="custodians (components), 2–9")]
ThresholdOption = Annotated[int | None, typer.Option(help="components needed to rebuild [default: all]")]
AlgorithmOption = Annotated[str, typer.Option(help="sm4 or 3des")]
ComponentOption = Annotated[
    list[str] | None,
    typer.Option(
        "--component",
        help="a custodian's component as INDEX-HEX:KCV (repeat); without it, fresh ones are made and shown",
    ),
]


def _hex(field: str, text: str, length: int | None = None) -> bytes:
    try:
        value = bytes.fromhex(text.replace(" ", ""))
    except ValueError:
        raise InvalidValue(field, "not hexadecimal") from None
    if length is not None and len(value) != length:
        raise InvalidValue(field, f"{len(value)} bytes, {length} expected ({2 * length} hex digits)")
    return value


def _algorithm(text: str) -> Algorithm:
    try:
        return ALGORITHMS[text.lower()]
    except KeyError:
        raise InvalidValue("algorithm", f"{text!r}: sm4 or 3des") from None


def _show_components(parts: list[ceremonies.Component], threshold: int) -> None:
    """Each component once, to its custodian: on a terminal the screen is cleared between them."""
    interactive = sys.stdin.isatty() and sys.stdout.isatty()
    for part in parts:
        console.print(
            Panel(
                f"[bold]{part.text()}[/bold]\ncheck value (KCV) [bold]{part.kcv}[/bold]",
                title=f"component {part.index} of {len(parts)} — for custodian {part.index} only",
                subtitle=f"any {threshold} rebuild the key" if threshold < len(parts) else "all are needed",
            )
        )
        if interactive:
            typer.prompt("custodian: write it down, then press Enter", default="", show_default=False)
            console.clear()


def _entered(texts: list[str], components: int) -> list[ceremonies.Component]:
    out = []
    for position, text in enumerate(texts, start=1):
        value, sep, kcv = text.rpartition(":")
        if not sep:
            raise InvalidValue(
                f"component {position}", "give it as INDEX-HEX:KCV (the check value it was shown with)"
            )
        out.append(ceremonies.parse_component(value, kcv, position))
    return out


def _secret(components: int, threshold: int | None, entered: list[str] | None) -> bytes:
    """The ceremony's secret: rebuilt from the entered components (each checked against its
    KCV), or fresh, its components shown.  Called before the store is touched, so a mistyped
    component leaves nothing written."""
    threshold = threshold or components
    if entered:
        return ceremonies.combine(_entered(entered, components), components, threshold)
    secret, parts = ceremonies.generate(components, threshold)
    _show_components(parts, threshold)
    return secret


def _kcv_table(keyset: KeySet) -> Table:
    table = Table(title=f"{keyset.id} · {keyset.algorithm.name} · check values")
    table.add_column("key")
    table.add_column("KCV")
    for name, kcv in keyset.kcvs().items():
        table.add_row(name, kcv)
    return table


def _national_ceremony(centre: KeyCentre, secret: bytes, algorithm: Algorithm) -> None:
    national = centre.ceremony(secret, algorithm)
    console.print(_kcv_table(national))
    console.print(f"stored {national.id} in {centre.store.path} ({centre.store.kek.label})")


@keys_app.command("ceremony")
def keys_ceremony(
    components: ComponentsOption = 3,
    threshold: ThresholdOption = None,
    algorithm: AlgorithmOption = "sm4",
    component: ComponentOption = None,
    store: StoreOption = None,
    kek: KekOption = "passphrase",
) -> None:
    """Make the national level-1 key set from custodians' components (XOR, or k of n)."""
    try:
        chosen = _algorithm(algorithm)
        existing = open_centre(store, kek) if (store or default_store()).exists() else None
        if existing is not None and existing.store.current_version() is not None:
            raise InvalidValue(
                "ceremony", "the store already holds a national set: use `healthcard keys rotate`"
            )
        secret = _secret(components, threshold, component)  # before the store is created
        _national_ceremony(existing or open_centre(store, kek, create=True), secret, chosen)
    except HealthCardError as exc:
        raise fail(exc) from None


@keys_app.command("rotate")
def keys_rotate(
    components: ComponentsOption = 3,
    threshold: ThresholdOption = None,
    algorithm: AlgorithmOption = "sm4",
    component: ComponentOption = None,
    store: StoreOption = None,
    kek: KekOption = "passphrase",
) -> None:
    """Key rollover: a new national version from a new ceremony; SAMs made afterwards hold the
    new version and the previous one, so cards of either keep working."""
    try:
        chosen = _algorithm(algorithm)
        centre = open_centre(store, kek)
        before = centre.store.current_version()
        if before is None:
            raise InvalidValue("rotate", "no national set yet: run `healthcard keys ceremony` first")
        _national_ceremony(centre, _secret(components, threshold, component), chosen)
        console.print(
            f"national keys rotated v{before} → v{before + 1}: derive the province sets again and reissue SAMs"
        )
    except HealthCardError as exc:
        raise fail(exc) from None


@keys_app.command("derive-province")
def keys_derive_province(
    province: Annotated[str, typer.Option(help="2-digit GB/T 2260 province code, e.g. 41")],
    version: Annotated[int | None, typer.Option(help="national version [default: current]")] = None,
    store: StoreOption = None,
    kek: KekOption = "passphrase",
) -> None:
    """A province's level-2 set K2 = D(K1, "PP000000") and its issuer certificate."""
    try:
        centre = open_centre(store, kek)
        keyset = centre.derive_province(province, version)
        console.print(_kcv_table(keyset))
        console.print(f"stored {keyset.id}; issuer certificate for {keyset.id.region}000000001 made")
    except HealthCardError as exc:
        raise fail(exc) from None


@keys_app.command("derive-city")
def keys_derive_city(
    city: Annotated[str, typer.Option(help="4-digit city prefix, e.g. 4101 (the optional level 3)")],
    version: Annotated[int | None, typer.Option(help="province set version [default: current]")] = None,
    store: StoreOption = None,
    kek: KekOption = "passphrase",
) -> None:
    """The optional level-3 set of a city: K3 = D(K2, "PPCC0000")."""
    try:
        centre = open_centre(store, kek)
        keyset = centre.derive_city(city, version)
        console.print(_kcv_table(keyset))
    except HealthCardError as exc:
        raise fail(exc) from None


@keys_app.command("list")
def keys_list(store: StoreOption = None, kek: KekOption = "passphrase") -> None:
    """What the key store holds: names, algorithms, check values (never a key)."""
    try:
        centre = open_centre(store, kek)
    except HealthCardError as exc:
        raise fail(exc) from None
    table = Table(title=f"{centre.store.path} · {centre.store.kek.label}")
    for column in ("entry", "kind", "algorithm", "check value", "created"):
        table.add_column(column)
    for entry in centre.store.entries():
        kcv = entry.kcv
        shown = (
            f"RK1DDF1 {kcv['RK1DDF1']} …"
            if isinstance(kcv, dict)
            else (kcv or entry.public.get("public", "")[:16])
        )
        table.add_row(entry.id, entry.kind, entry.algorithm, shown, entry.created)
    console.print(table)


@keys_app.command("transport-key")
def keys_transport_key(
    name: Annotated[str, typer.Option(help="a name both key centres use, e.g. p41")],
    components: Annotated[int, typer.Option(help="components, 2–9")] = 2,
    component: ComponentOption = None,
    store: StoreOption = None,
    kek: KekOption = "passphrase",
) -> None:
    """Make (or, with --component, enter) a transport key (ZMK) that wraps key exports."""
    try:
        secret = _secret(components, None, component)
        centre = open_centre(store, kek, create=True)
        kcv = key_check_value(secret).hex().upper()
        centre.store.put_secret(f"transport/{name}", "transport", secret, algorithm="SM4", kcv=kcv)
        console.print(f"transport key {name} stored, check value {kcv}")
    except HealthCardError as exc:
        raise fail(exc) from None


@keys_app.command("export")
def keys_export(
    key_set: Annotated[str, typer.Option("--set", help="e.g. province/41/v1")],
    transport: Annotated[str, typer.Option(help="transport key name")],
    out: Annotated[Path, typer.Option(help="where to write the wrapped export")],
    store: StoreOption = None,
    kek: KekOption = "passphrase",
) -> None:
    """Write a key set wrapped under a transport key (never in clear)."""
    try:
        centre = open_centre(store, kek)
        doc = exchange.export_set(
            centre.store.keyset(key_set), centre.store.secret(f"transport/{transport}"), transport
        )
        out.write_text(json.dumps(doc, indent=1), encoding="utf-8")
        console.print(f"{key_set} wrapped under {transport} → {out}")
    except HealthCardError as exc:
        raise fail(exc) from None


@keys_app.command("import")
def keys_import(
    path: Annotated[Path, typer.Argument(help="an export made by `healthcard keys export`")],
    transport: Annotated[str, typer.Option(help="transport key name")],
    store: StoreOption = None,
    kek: KekOption = "passphrase",
) -> None:
    """Read a wrapped key set: every check value must match, or nothing is stored."""
    try:
        centre = open_centre(store, kek, create=True)
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InvalidValue("export", f"cannot read {path}: {type(exc).__name__}") from None
        keyset = exchange.import_set(doc, centre.store.secret(f"transport/{transport}"))
        centre.store.put_keyset(keyset)
        console.print(_kcv_table(keyset))
        console.print(f"imported {keyset.id}: every check value matched")
    except HealthCardError as exc:
        raise fail(exc) from None


@keys_app.command("trust")
def keys_trust(
    out: Annotated[Path, typer.Option(help="where to write the trust store (public keys)")],
    store: StoreOption = None,
    kek: KekOption = "passphrase",
) -> None:
    """Export the national root public keys every terminal needs to verify signatures."""
    try:
        trust = open_centre(store, kek).trust_store()
        out.write_text(json.dumps(trust.to_dict(), indent=1), encoding="utf-8")
        console.print(f"{len(trust)} national root(s) → {out}")
    except HealthCardError as exc:
        raise fail(exc) from None


@keys_app.command("hsm-init")
def keys_hsm_init(
    label: Annotated[str, typer.Option(help="the KEK's label in the token")] = DEFAULT_KEY_LABEL,
) -> None:
    """Make the key-encryption key inside the PKCS#11 token (once)."""
    try:
        pin = os.environ.get("HEALTHCARD_PKCS11_PIN") or typer.prompt("HSM user PIN", hide_input=True)
        module = os.environ.get("HEALTHCARD_PKCS11_MODULE", DEFAULT_MODULE)
        token = os.environ.get("HEALTHCARD_PKCS11_TOKEN", "healthcard")
        made = create_pkcs11_kek(module, token, pin, label)
        console.print(f"{'made' if made else 'already there:'} AES-256 KEK {label!r} in token {token!r}")
    except HealthCardError as exc:
        raise fail(exc) from None


@keys_app.command("rekek")
def keys_rekek(
    to: Annotated[str, typer.Option("--to", help="the new KEK: passphrase or pkcs11")],
    store: StoreOption = None,
    kek: KekOption = "passphrase",
) -> None:
    """Re-wrap the store's data key under another KEK (e.g. move it into the HSM)."""
    try:
        centre = open_centre(store, kek)
        if to == "passphrase":
            text = os.environ.get("HEALTHCARD_NEW_KEYSTORE_PASSPHRASE")
            if not text:
                if not sys.stdin.isatty():
                    raise InvalidValue("passphrase", "set HEALTHCARD_NEW_KEYSTORE_PASSPHRASE (no terminal)")
                text = typer.prompt("new key store passphrase", hide_input=True, confirmation_prompt=True)
            new = open_kek("passphrase", passphrase=text)
        else:
            new = kek_from_env(to)
        centre.store.change_kek(new)
        console.print(f"{centre.store.path} is now protected by {new.label}")
    except HealthCardError as exc:
        raise fail(exc) from None


@keys_app.command("diversify")
def keys_diversify(
    key: Annotated[str, typer.Option(help="parent key, 32 hex digits")],
    factor: Annotated[str | None, typer.Option(help="8-byte factor, 16 hex digits")] = None,
    province: Annotated[str | None, typer.Option(help="or: the province factor of this area code")] = None,
    algorithm: AlgorithmOption = "sm4",
) -> None:
    """D(K, f) = E_K(f ‖ NOT f) (DECISIONS.md §10) — for checking published vectors."""
    try:
        if (factor is None) == (province is None):
            raise InvalidValue("factor", "give --factor or --province")
        f = (
            _hex("factor", factor, 8)
            if factor is not None
            else (province_code(province or "") + "000000").encode()
        )
        child = diversify(_hex("key", key, 16), f, _algorithm(algorithm))
        console.print(f"factor {f.hex().upper()}\nchild  {child.hex().upper()}", highlight=False)
    except HealthCardError as exc:
        raise fail(exc) from None


@keys_app.command("ehc-id")
def keys_ehc_id(
    master_index: Annotated[str, typer.Option(help="主索引ID, 64 hex digits")],
    id_type: Annotated[str, typer.Option(help="证件类型, e.g. 01")],
    id_number: Annotated[str, typer.Option(help="证件号码")],
    root_key: Annotated[
        str | None,
        typer.Option(envvar="HEALTHCARD_EHC_ROOT_KEY", help="security root key, 32 hex (for vectors)"),
    ] = None,
    store: StoreOption = None,
    kek: KekOption = "passphrase",
) -> None:
    """The electronic health card ID (CARD-SPEC.md §9.1); the security root key comes from
    --root-key (test vectors) or the key store entry ehc/security-root."""
    try:
        mindex = _hex("master_index", master_index, 32)
        if root_key is not None:
            root = _hex("root_key", root_key, 16)
        else:
            root = open_centre(store, kek).store.secret("ehc/security-root")
        console.print(ehc.ehc_id(root, mindex, id_type, id_number), highlight=False)
    except HealthCardError as exc:
        raise fail(exc) from None


@sam_app.command("new")
def sam_new(
    province: Annotated[str, typer.Option(help="the terminal's province, e.g. 41")],
    terminal: Annotated[str, typer.Option(help="terminal number, 12 digits PPCCIISSSSSS")],
    out: Annotated[Path, typer.Option(help="where to write the SAM image")],
    serial: Annotated[str, typer.Option(help="the SAM chip's serial, 16 hex digits")] = "",
    role: Annotated[
        str, typer.Option(help="terminal (read/update/SM keys) or issuer (+ card lock, PIN unblock)")
    ] = "terminal",
    pin: Annotated[
        str, typer.Option(envvar="HEALTHCARD_SAM_PIN", help="SAM PIN (even number of digits)")
    ] = "123456",
    store: StoreOption = None,
    kek: KekOption = "passphrase",
) -> None:
    """Personalise a SAM: national K1 (current + previous version), SM2 key + certificate."""
    try:
        number = terminal_number(terminal)
        if f"{number[0]:02X}" != province_code(province):
            raise InvalidValue("terminal", f"terminal {terminal} is not in province {province}")
        roles = {"terminal": Holder.TERMINAL_SAM, "issuer": Holder.ISSUER_SAM}
        if role not in roles:
            raise InvalidValue("role", f"{role!r}: terminal or issuer")
        if len(pin) % 2 or not pin.isdigit() or not 2 <= len(pin) <= 16:
            raise InvalidValue("pin", "a SAM PIN is an even number of digits, 2 to 16")
        chip = _hex("serial", serial, 8) if serial else number[:2] + os.urandom(6)
        centre = open_centre(store, kek)
        state = centre.sam(SamRequest(chip, number, roles[role], pin))
        image.save(
            state, out, image.Sealer(os.environ.get("HEALTHCARD_IMAGE_PASSPHRASE") or image.DEMO_PASSPHRASE)
        )
        info = state.key_info()
        held = f"v{info.version}" + (f" and v{info.previous}" if info.previous else "")
        console.print(
            f"SAM {chip.hex().upper()} for terminal {terminal} ({role}), national keys {held} → {out}"
        )
    except HealthCardError as exc:
        raise fail(exc) from None


__all__ = ["keys_app", "sam_app"]
