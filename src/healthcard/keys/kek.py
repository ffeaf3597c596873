"""Key-encryption keys (KEKs) of the key store: the outer layer of its envelope encryption.

The envelope::

    key store file
    ├── keys      every key, encrypted under a random data key (DEK) — the key store's business
    └── dek box   the DEK, wrapped by a KEK — this module's business
                  {"kind": "passphrase" | "pkcs11", ...everything to unwrap it but the secret}

Only the DEK is ever wrapped by the KEK, so changing the passphrase or moving the store into an
HSM re-wraps 16 or 32 bytes and leaves the encrypted keys alone.  The caller passes an ``aad``
(e.g. the store's format and name) that every box authenticates: a box copied into another
context does not open.

Two KEKs implement :class:`Kek`:

* :class:`PassphraseKek` — the embedded default.  KEK = scrypt(passphrase, salt, n=2**15, r=8,
  p=1, 16 bytes), a memory-hard KDF; the DEK is sealed with SM4-GCM (random 12-byte nonce, the
  aad authenticated, 16-byte tag), as :class:`healthcard.card.image.Sealer` does for card
  images.  The salt and the scrypt parameters are in the box; the derived KEK is cached per
  (salt, parameters), so opening and re-writing a store runs scrypt once.
* :class:`Pkcs11Kek` — a PKCS#11 HSM (SoftHSM2 in tests) through python-pkcs11.  The KEK is an
  AES-256 secret key *in the token* (token object, private, sensitive, non-extractable, only
  ENCRYPT/DECRYPT), made by :func:`create_pkcs11_kek` (``healthcard keys hsm-init``).  The DEK is
  wrapped *inside the HSM* with **CKM_AES_GCM** (random 12-byte IV, the aad, 128-bit tag): the
  KEK never leaves the token.  GCM was chosen over CKM_AES_KEY_WRAP_PAD because it
  authenticates the aad, which key wrap cannot, and because it works on SoftHSM2 2.6.1 through
  python-pkcs11 0.10.1 (``GCMParams``), its output being exactly standard AES-GCM (ciphertext
  || tag) — so no fallback was needed.  (Key wrap would also be awkward: C_WrapKey wants the DEK
  as a token object, and SoftHSM2's "AES_KEY_WRAP_PAD" is really RFC 5649 KWP.)  SoftHSM2
  answers a GCM tag mismatch with CKR_GENERAL_ERROR rather than CKR_ENCRYPTED_DATA_INVALID, so
  every failure of the decryption counts as "wrong KEK or damaged box".

Every PKCS#11 session is opened and closed (logged out) around one operation, under one
process-wide lock: PKCS#11 login state belongs to the whole application, so two overlapping
logins would fail (CKR_USER_ALREADY_LOGGED_IN) and one session's logout would log out the other.
The KEK is used once per store open or write, so serialising costs nothing that matters.
python-pkcs11 is imported lazily: it is the optional ``hsm`` extra, and the passphrase KEK needs
none of it.

Errors are :class:`~healthcard.errors.KeyStoreError` with a message that says what is wrong (the
passphrase, the module, the token, the PIN, the key) and never contains a passphrase, a PIN or
key bytes; bad parameters are field-named :class:`~healthcard.errors.InvalidValue`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from healthcard.errors import InvalidValue, KeyStoreError

if TYPE_CHECKING:
    import pkcs11
    from pkcs11._pkcs11 import lib as pkcs11_lib

__all__ = [
    "DEFAULT_KEY_LABEL",
    "DEFAULT_MODULE",
    "Kek",
    "PassphraseKek",
    "Pkcs11Kek",
    "create_pkcs11_kek",
    "open_kek",
]

#: SoftHSM2's PKCS#11 module on Debian (package softhsm2)
DEFAULT_MODULE = "/usr/lib/softhsm/libsofthsm2.so"
#: the label of the KEK in the token
DEFAULT_KEY_LABEL = "healthcard-kek"

SCRYPT_N, SCRYPT_R, SCRYPT_P, KEK_LEN = 2**15, 8, 1, 16
#: a box may ask for stronger scrypt parameters than ours, but not for more memory than this
_SCRYPT_MAX_MEM = 256 * 2**20
_NONCE_LEN, _TAG_LEN = 12, 16

_PASSPHRASE_ALG = "SM4-GCM/scrypt"
_PKCS11_ALG = "AES-256-GCM/CKM_AES_GCM"
_WRONG_PASSPHRASE = "the key store passphrase is wrong, or the key store is damaged"


class Kek(Protocol):
    """A key-encryption key: wraps and unwraps the key store's data key (DEK)."""

    #: what the KEK is, without any secret (for messages and ``healthcard keys status``)
    label: str

    def wrap(self, dek: bytes, aad: bytes) -> dict[str, str]:
        """The DEK wrapped: a JSON-able box with ``"kind"`` and all but the secret to unwrap it."""
        ...

    def unwrap(self, box: dict[str, str], aad: bytes) -> bytes:
        """The DEK from a box :meth:`wrap` made with the same aad; KeyStoreError otherwise."""
        ...


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


def _check_dek(dek: bytes) -> None:
    if not isinstance(dek, bytes) or not dek:
        raise InvalidValue("dek", "the data key must be non-empty bytes")


def _check_kind(box: dict[str, str], kind: str) -> None:
    if not isinstance(box, dict):
        raise KeyStoreError("the key store's data key box is damaged (not an object)")
    found = box.get("kind")
    if found != kind:
        raise KeyStoreError(f"the key store's data key is wrapped by a {found!r} KEK, not a {kind!r} one")


# ---------------------------------------------------------------------------------------------
# passphrase


class PassphraseKek:
    """KEK = scrypt(passphrase); the DEK sealed with SM4-GCM under it."""

    label = "passphrase (scrypt)"

    def __init__(self, passphrase: str) -> None:
        if not isinstance(passphrase, str) or not passphrase:
            raise InvalidValue("passphrase", "the key store passphrase must not be empty")
        self._passphrase = passphrase.encode("utf-8")
        self._cache: dict[tuple[bytes, int, int, int], bytes] = {}
        # one salt per instance (re-used from the box it last opened): re-wrapping costs no KDF run
        self._salt = secrets.token_bytes(16)

    def __repr__(self) -> str:
        return "PassphraseKek(<passphrase hidden>)"

    def _kek(self, salt: bytes, n: int, r: int, p: int) -> bytes:
        key = (salt, n, r, p)
        if key not in self._cache:
            self._cache[key] = hashlib.scrypt(
                self._passphrase, salt=salt, n=n, r=r, p=p, dklen=KEK_LEN, maxmem=_SCRYPT_MAX_MEM + 2**20
            )
        return self._cache[key]

    def wrap(self, dek: bytes, aad: bytes) -> dict[str, str]:
        _check_dek(dek)
        salt, nonce = self._salt, secrets.token_bytes(_NONCE_LEN)
        enc = Cipher(
            algorithms.SM4(self._kek(salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)), modes.GCM(nonce)
        ).encryptor()
        enc.authenticate_additional_data(aad)
        wrapped = enc.update(dek) + enc.finalize() + enc.tag
        return {
            "kind": "passphrase",
            "alg": _PASSPHRASE_ALG,
            "kdf": "scrypt",
            "n": str(SCRYPT_N),
            "r": str(SCRYPT_R),
            "p": str(SCRYPT_P),
            "salt": _b64(salt),
            "nonce": _b64(nonce),
            "wrapped": _b64(wrapped),
        }

    def unwrap(self, box: dict[str, str], aad: bytes) -> bytes:
        _check_kind(box, "passphrase")
        try:
            if box["alg"] != _PASSPHRASE_ALG or box["kdf"] != "scrypt":
                raise ValueError("algorithm")
            n, r, p = int(box["n"]), int(box["r"]), int(box["p"])
            if n < 2 or n & (n - 1) or not 1 <= r <= 64 or not 1 <= p <= 16 or 128 * n * r > _SCRYPT_MAX_MEM:
                raise ValueError("scrypt parameters")
            salt, nonce, blob = _unb64(box["salt"]), _unb64(box["nonce"]), _unb64(box["wrapped"])
            if len(salt) < 16 or len(nonce) != _NONCE_LEN or len(blob) <= _TAG_LEN:
                raise ValueError("lengths")
            kek = self._kek(salt, n, r, p)
            dec = Cipher(algorithms.SM4(kek), modes.GCM(nonce, blob[-_TAG_LEN:])).decryptor()
            dec.authenticate_additional_data(aad)
            dek = dec.update(blob[:-_TAG_LEN]) + dec.finalize()
        except (KeyError, TypeError, ValueError, binascii.Error, InvalidTag):
            raise KeyStoreError(_WRONG_PASSPHRASE) from None
        if (n, r, p) == (SCRYPT_N, SCRYPT_R, SCRYPT_P):
            self._salt = salt
        return dek


# ---------------------------------------------------------------------------------------------
# PKCS#11

#: PKCS#11 login state is per application, not per session: one session at a time (see above)
_PKCS11_LOCK = threading.RLock()


def _load_lib(module: str) -> pkcs11_lib:
    try:
        import pkcs11
    except ImportError:
        raise KeyStoreError(
            "the PKCS#11 KEK needs python-pkcs11: pip install 'healthcard[hsm]' (python-pkcs11==0.10.1)"
        ) from None
    if not Path(module).is_file():
        raise KeyStoreError(
            f"PKCS#11 module {module} does not exist (for SoftHSM2 run scripts/hsm-up.sh, "
            "or give the path of the HSM vendor's module)"
        )
    try:
        return pkcs11.lib(module)
    except pkcs11.PKCS11Error as exc:
        if "loading" in str(exc):  # dlopen/dlsym failed; the text is the loader's, naming the path
            raise KeyStoreError(f"cannot load PKCS#11 module {module}: {exc}") from None
        conf = os.environ.get("SOFTHSM2_CONF", "unset")
        raise KeyStoreError(
            f"PKCS#11 module {module} failed to initialise ({type(exc).__name__}); for SoftHSM2 "
            f"check its configuration (SOFTHSM2_CONF={conf}; scripts/hsm-up.sh writes one)"
        ) from None


def _find_token(lib: pkcs11_lib, module: str, token_label: str) -> pkcs11.Token:
    import pkcs11

    try:
        return lib.get_token(token_label=token_label)
    except pkcs11.NoSuchToken:
        labels = sorted({t.label for t in lib.get_tokens()} - {""})
        there = ", ".join(repr(label) for label in labels) if labels else "none (no initialised token)"
        raise KeyStoreError(
            f"no PKCS#11 token labelled {token_label!r} in module {module}; tokens there: {there}"
        ) from None
    except pkcs11.MultipleTokensReturned:
        raise KeyStoreError(
            f"more than one PKCS#11 token is labelled {token_label!r} in module {module}"
        ) from None


@contextmanager
def _session(token: pkcs11.Token, pin: str, *, rw: bool = False) -> Iterator[pkcs11.Session]:
    """A logged-in session on ``token``, closed (and logged out) on leaving, under the lock."""
    import pkcs11

    with _PKCS11_LOCK:
        try:
            session = token.open(rw=rw, user_pin=pin)
        except (pkcs11.PinIncorrect, pkcs11.PinInvalid, pkcs11.PinLenRange):
            raise KeyStoreError(f"wrong PIN for PKCS#11 token {token.label!r}") from None
        except pkcs11.PinLocked:
            raise KeyStoreError(f"the user PIN of PKCS#11 token {token.label!r} is locked") from None
        except pkcs11.PinExpired:
            raise KeyStoreError(f"the user PIN of PKCS#11 token {token.label!r} has expired") from None
        except pkcs11.UserPinNotInitialized:
            raise KeyStoreError(f"PKCS#11 token {token.label!r} has no user PIN set") from None
        except pkcs11.PKCS11Error as exc:
            raise KeyStoreError(
                f"cannot open a session on PKCS#11 token {token.label!r}: {type(exc).__name__}"
            ) from None
        with session:
            yield session


def _find_key(session: pkcs11.Session, token_label: str, key_label: str) -> pkcs11.SecretKey | None:
    import pkcs11

    try:
        key = session.get_key(object_class=pkcs11.ObjectClass.SECRET_KEY, label=key_label)
    except pkcs11.NoSuchKey:
        return None
    except pkcs11.MultipleObjectsReturned:
        raise KeyStoreError(
            f"more than one secret key is labelled {key_label!r} on PKCS#11 token {token_label!r}"
        ) from None
    if not isinstance(key, pkcs11.SecretKey) or key.key_type != pkcs11.KeyType.AES:
        raise KeyStoreError(f"key {key_label!r} on PKCS#11 token {token_label!r} is not an AES key")
    return key


def _no_key(token_label: str, key_label: str) -> KeyStoreError:
    return KeyStoreError(
        f"no key labelled {key_label!r} on PKCS#11 token {token_label!r}: "
        "run `healthcard keys hsm-init` to create the key store's KEK"
    )


def _check_pkcs11_params(module: str, token_label: str, pin: str, key_label: str) -> None:
    for field, value in (("module", module), ("token", token_label), ("pin", pin), ("key_label", key_label)):
        if not isinstance(value, str) or not value:
            raise InvalidValue(field, "must not be empty")


class Pkcs11Kek:
    """KEK = an AES-256 key inside a PKCS#11 token; the DEK wrapped with CKM_AES_GCM in the HSM.

    Opening checks everything up front — the module loads, the token is there, the PIN is right
    and the key exists — so a misconfigured HSM is reported when the key store opens."""

    def __init__(self, module: str, token_label: str, pin: str, key_label: str = DEFAULT_KEY_LABEL) -> None:
        _check_pkcs11_params(module, token_label, pin, key_label)
        self.module, self.token_label, self.key_label = module, token_label, key_label
        self._pin = pin
        self.label = f"PKCS#11 token {token_label!r}, key {key_label!r}"
        self._token = _find_token(_load_lib(module), module, token_label)
        with _session(self._token, self._pin) as session:
            if _find_key(session, token_label, key_label) is None:
                raise _no_key(token_label, key_label)

    def __repr__(self) -> str:
        return (
            f"Pkcs11Kek(module={self.module!r}, token={self.token_label!r}, "
            f"key={self.key_label!r}, pin=<hidden>)"
        )

    def _key(self, session: pkcs11.Session, key_label: str) -> pkcs11.SecretKey:
        key = _find_key(session, self.token_label, key_label)
        if key is None:
            raise _no_key(self.token_label, key_label)
        return key

    def wrap(self, dek: bytes, aad: bytes) -> dict[str, str]:
        import pkcs11

        _check_dek(dek)
        iv = secrets.token_bytes(_NONCE_LEN)
        with _session(self._token, self._pin) as session:
            key = self._key(session, self.key_label)
            if not isinstance(key, pkcs11.types.EncryptMixin):
                raise KeyStoreError(f"key {self.key_label!r} on token {self.token_label!r} cannot encrypt")
            try:
                wrapped = key.encrypt(
                    dek, mechanism=pkcs11.Mechanism.AES_GCM, mechanism_param=pkcs11.GCMParams(iv, aad or None)
                )
            except pkcs11.PKCS11Error as exc:
                raise KeyStoreError(
                    f"the HSM could not wrap the data key with key {self.key_label!r} on token "
                    f"{self.token_label!r}: {type(exc).__name__}"
                ) from None
        assert isinstance(wrapped, bytes)
        return {
            "kind": "pkcs11",
            "alg": _PKCS11_ALG,
            "key_label": self.key_label,
            "iv": _b64(iv),
            "wrapped": _b64(wrapped),
        }

    def unwrap(self, box: dict[str, str], aad: bytes) -> bytes:
        """The DEK.  The box names the key that wrapped it, so a store wrapped under an older KEK
        label still opens while that key is in the token."""
        import pkcs11

        _check_kind(box, "pkcs11")
        damaged = KeyStoreError(
            f"the HSM cannot unwrap the key store's data key with key {box.get('key_label')!r} on token "
            f"{self.token_label!r}: wrong KEK (another token or key) or a damaged key store"
        )
        try:
            if box["alg"] != _PKCS11_ALG or not isinstance(box["key_label"], str) or not box["key_label"]:
                raise ValueError("algorithm")
            key_label, iv, blob = box["key_label"], _unb64(box["iv"]), _unb64(box["wrapped"])
            if len(iv) != _NONCE_LEN or len(blob) <= _TAG_LEN:
                raise ValueError("lengths")
        except (KeyError, TypeError, ValueError, binascii.Error):
            raise damaged from None
        with _session(self._token, self._pin) as session:
            key = _find_key(session, self.token_label, key_label)
            if key is None:
                raise KeyStoreError(
                    f"the key store's data key is wrapped under key {key_label!r}, which PKCS#11 token "
                    f"{self.token_label!r} does not hold (a lost KEK cannot be re-created; "
                    "`healthcard keys hsm-init` only makes a new one)"
                )
            if not isinstance(key, pkcs11.types.DecryptMixin):
                raise KeyStoreError(f"key {key_label!r} on token {self.token_label!r} cannot decrypt")
            try:
                dek = key.decrypt(
                    blob,
                    mechanism=pkcs11.Mechanism.AES_GCM,
                    mechanism_param=pkcs11.GCMParams(iv, aad or None),
                )
            except pkcs11.PKCS11Error:  # SoftHSM2 says CKR_GENERAL_ERROR on a tag mismatch
                raise damaged from None
        assert isinstance(dek, bytes)
        return dek


def create_pkcs11_kek(module: str, token_label: str, pin: str, key_label: str = DEFAULT_KEY_LABEL) -> bool:
    """Generate the KEK in the token unless a key with that label is there; True when it made one.

    The key is AES-256, generated in the HSM: a token object, private, sensitive, never
    extractable, usable only to encrypt and decrypt."""
    import pkcs11

    _check_pkcs11_params(module, token_label, pin, key_label)
    token = _find_token(_load_lib(module), module, token_label)
    with _session(token, pin, rw=True) as session:
        if _find_key(session, token_label, key_label) is not None:
            return False
        attr = pkcs11.Attribute
        try:
            session.generate_key(
                pkcs11.KeyType.AES,
                256,
                label=key_label,
                store=True,
                capabilities=pkcs11.MechanismFlag.ENCRYPT | pkcs11.MechanismFlag.DECRYPT,
                template={
                    attr.TOKEN: True,
                    attr.PRIVATE: True,
                    attr.SENSITIVE: True,
                    attr.EXTRACTABLE: False,
                    attr.MODIFIABLE: False,
                },
            )
        except pkcs11.PKCS11Error as exc:
            raise KeyStoreError(
                f"the HSM could not generate key {key_label!r} on PKCS#11 token {token_label!r}: "
                f"{type(exc).__name__}"
            ) from None
    return True


# ---------------------------------------------------------------------------------------------


def open_kek(
    kind: str,
    *,
    passphrase: str | None = None,
    module: str | None = None,
    token: str | None = None,
    pin: str | None = None,
    key_label: str = DEFAULT_KEY_LABEL,
) -> Kek:
    """The KEK of ``kind`` ("passphrase" or "pkcs11"); a missing parameter is a field-named
    InvalidValue, an HSM that cannot be used a KeyStoreError."""
    if kind == "passphrase":
        if passphrase is None:
            raise InvalidValue("passphrase", "the passphrase KEK needs a passphrase")
        return PassphraseKek(passphrase)
    if kind == "pkcs11":
        if token is None:
            raise InvalidValue("token", "the PKCS#11 KEK needs the token label")
        if pin is None:
            raise InvalidValue("pin", "the PKCS#11 KEK needs the token's user PIN")
        return Pkcs11Kek(module if module is not None else DEFAULT_MODULE, token, pin, key_label)
    raise InvalidValue("kind", f"unknown KEK kind {kind!r} (expected 'passphrase' or 'pkcs11')")
