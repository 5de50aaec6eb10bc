"""The keyring: versioned key-encryption keys (KEKs) and the blind-index key.

Providers load a ``Keyring`` and the application injects its keys into the crypto functions;
nothing here is global. ``KeyringFile`` is the development default (created 0600 in the
instance folder) and also reads a secret mounted as a file in production; ``KeyringEnv`` reads
the same JSON document from an environment variable's value::

    {"format": 1, "current": "kek-2", "keks": {"kek-1": "<base64>", "kek-2": "<base64>"},
     "index_key": "<base64>", "development": false}

A KMS plugs in behind ``KeyProvider``. The simple way is a provider whose ``load()`` asks the
KMS to decrypt locally stored, KMS-wrapped KEKs at start-up and returns an ordinary Keyring.
The better way keeps KEKs inside the KMS: the provider's ``kek()`` lookup is replaced by a
call that sends each wrapped DEK to the KMS for unwrapping (a seam beside
``envelope.unwrap``), so KEK bytes never enter this process and rotation, retirement and
access logging happen in the KMS.
"""

import base64
import fcntl
import json
import os
import re
import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol

from cryptography.hazmat.primitives.constant_time import bytes_eq

from referrals.crypto.aead import check_key_id

KEY_BYTES = 32
DOCUMENT_FORMAT = 1
_KEK_NUMBER = re.compile(r"kek-([0-9]+)")
_FIELDS = frozenset({"format", "current", "keks", "index_key", "development"})


@dataclass(frozen=True, repr=False)
class Keyring:
    """KEKs by id, the id of the one new DEKs are wrapped with, and the blind-index key."""

    keks: Mapping[str, bytes]
    current: str
    index_key: bytes
    development: bool = False

    def __post_init__(self) -> None:
        # A read-only copy: a caller mutating its dict afterwards must not change our keys.
        object.__setattr__(self, "keks", MappingProxyType(dict(self.keks)))
        for key_id, key in self.keks.items():
            check_key_id(key_id)
            if len(key) != KEY_BYTES:
                raise ValueError(f"KEK {key_id!r} must be {KEY_BYTES} bytes")
        if self.current not in self.keks:
            raise ValueError(f"current KEK {self.current!r} is not in the keyring")
        if len(self.index_key) != KEY_BYTES:
            raise ValueError(f"index key must be {KEY_BYTES} bytes")
        # One key for two purposes would tie the blind index's secrecy to every KEK's.
        if any(bytes_eq(self.index_key, key) for key in self.keks.values()):
            raise ValueError("index key must differ from every KEK")

    def __repr__(self) -> str:
        # Ids only: a keyring in a log line or traceback must not disclose key bytes.
        return (
            f"Keyring(current={self.current!r}, keks={sorted(self.keks)!r}, "
            f"development={self.development!r})"
        )

    def kek(self, key_id: str) -> bytes | None:
        """The KEK with ``key_id``, or None; shaped to be the ``key_for`` of unwrap."""
        return self.keks.get(key_id)

    def current_kek(self) -> tuple[str, bytes]:
        """The id and key that new DEKs are wrapped with."""
        return self.current, self.keks[self.current]


class KeyProvider(Protocol):
    """Where a Keyring comes from: a file, an environment variable, a KMS."""

    def load(self) -> Keyring: ...


def generate_key() -> bytes:
    """A fresh random 256-bit key."""
    return os.urandom(KEY_BYTES)


def _decode_key(value: object, name: str) -> bytes:
    if not isinstance(value, str):
        raise ValueError(f"keyring {name} must be a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except ValueError:  # binascii.Error
        pass
    raise ValueError(f"keyring {name} is not valid base64")


def _parse_document(text: str, source: str) -> Keyring:
    """Build a Keyring from the JSON document; ValueError naming ``source`` and the problem."""
    try:
        document: Any = json.loads(text)
    except ValueError:
        document = None
    if not isinstance(document, dict):
        raise ValueError(f"{source}: keyring is not a JSON object")
    try:
        if set(document) != _FIELDS - {"development"} and set(document) != _FIELDS:
            raise ValueError(f"keyring fields must be {sorted(_FIELDS)}")
        # type() check too: JSON true would otherwise pass as 1.
        if type(document["format"]) is not int or document["format"] != DOCUMENT_FORMAT:
            raise ValueError(f"keyring format must be {DOCUMENT_FORMAT}")
        keks = document["keks"]
        if not isinstance(keks, dict) or not keks:
            raise ValueError("keyring keks must be a non-empty object")
        current, development = document["current"], document.get("development", False)
        if not isinstance(current, str) or not isinstance(development, bool):
            raise ValueError("keyring current must be a string and development a boolean")
        return Keyring(
            keks={key_id: _decode_key(key, f"KEK {key_id!r}") for key_id, key in keks.items()},
            current=current,
            index_key=_decode_key(document["index_key"], "index key"),
            development=development,
        )
    except ValueError as error:
        raise ValueError(f"{source}: {error}") from None


def _dump_document(keyring: Keyring) -> str:
    def b64(key: bytes) -> str:
        return base64.b64encode(key).decode("ascii")

    document = {
        "format": DOCUMENT_FORMAT,
        "current": keyring.current,
        "keks": {key_id: b64(key) for key_id, key in keyring.keks.items()},
        "index_key": b64(keyring.index_key),
        "development": keyring.development,
    }
    return json.dumps(document, indent=2) + "\n"


class KeyringFile:
    """A keyring in a JSON file that only its owner may read (mode 0600 or 0400).

    Changes are written to a 0600 temporary file in the same directory and renamed over the
    keyring, so a crash never leaves a half-written keyring; an exclusive lock on the
    directory keeps two concurrent rotations from losing a KEK. A running service notices
    a replaced file by its ``stamp`` and loads it again.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def __repr__(self) -> str:
        return f"KeyringFile({str(self.path)!r})"

    def stamp(self) -> tuple[int, int] | None:
        """Identity of the file's current contents (inode, mtime): rotation replaces the
        file, so a changed stamp tells a running process to load it again."""
        try:
            info = self.path.stat()
        except FileNotFoundError:
            return None
        return info.st_ino, info.st_mtime_ns

    def exists(self) -> bool:
        return self.path.exists()

    def load(self) -> Keyring:
        """Read the keyring; ValueError if group or others may access the file."""
        fd = os.open(self.path, os.O_RDONLY)
        # fstat the descriptor we read from, so the mode checked is the file's we read.
        with os.fdopen(fd, encoding="utf-8") as handle:
            mode = os.fstat(handle.fileno()).st_mode & 0o777
            if mode & 0o077:
                raise ValueError(
                    f"keyring file {self.path} has mode {mode:o}: it must be readable by its "
                    "owner only (chmod 600)"
                )
            text = handle.read()
        return _parse_document(text, f"keyring file {self.path}")

    def create(self, *, development: bool) -> Keyring:
        """Generate a keyring with KEK "kek-1"; FileExistsError if the file already exists."""
        keyring = Keyring(
            keks={"kek-1": generate_key()},
            current="kek-1",
            index_key=generate_key(),
            development=development,
        )
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with self._locked() as directory:
            # Checked under the lock: replacing an existing keyring would destroy its keys.
            if self.path.exists():
                raise FileExistsError(f"keyring file {self.path} already exists")
            self._write(directory, keyring)
        return keyring

    def rotate(self) -> str:
        """Add KEK "kek-N+1" and make it current; older KEKs stay to unwrap existing DEKs."""
        with self._locked() as directory:
            keyring = self.load()
            numbers = [int(m[1]) for k in keyring.keks if (m := _KEK_NUMBER.fullmatch(k))]
            new_id = f"kek-{max(numbers, default=0) + 1}"
            keks = {**keyring.keks, new_id: generate_key()}
            self._write(directory, Keyring(keks, new_id, keyring.index_key, keyring.development))
        return new_id

    def retire(self, key_id: str) -> None:
        """Remove a non-current KEK. The caller must first check that no wrapped DEK uses it:
        every DEK still wrapped with it becomes unreadable."""
        with self._locked() as directory:
            keyring = self.load()
            if key_id == keyring.current:
                raise ValueError(f"KEK {key_id!r} is current and cannot be retired")
            if key_id not in keyring.keks:
                raise ValueError(f"KEK {key_id!r} is not in the keyring")
            keks = {k: v for k, v in keyring.keks.items() if k != key_id}
            new = Keyring(keks, keyring.current, keyring.index_key, keyring.development)
            self._write(directory, new)

    @contextmanager
    def _locked(self) -> Iterator[int]:
        """An exclusive lock on the keyring's directory, whose inode, unlike the keyring
        file's, survives the rename; yields the directory's descriptor."""
        fd = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield fd
        finally:
            os.close(fd)  # releases the lock

    def _write(self, directory: int, keyring: Keyring) -> None:
        temporary = self.path.with_name(f".{self.path.name}.{secrets.token_hex(8)}.tmp")
        # O_EXCL: never follow a planted symlink or reuse someone else's file. Mode 0600 from
        # the start, so the keys are never readable by others, not even briefly.
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(_dump_document(keyring))
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        os.fsync(directory)  # make the rename itself durable


class KeyringEnv:
    """A keyring given as the JSON document in an environment variable's value; read-only."""

    def __init__(self, value: str) -> None:
        self._value = value

    def __repr__(self) -> str:
        return "KeyringEnv(<redacted>)"

    def load(self) -> Keyring:
        return _parse_document(self._value, "keyring environment value")
