"""Participant codes become pseudonyms before anything is written.

The researcher types the participant's code (from the lab's own sign-up list); the app
stores only ``pseudonym(code)``: a keyed hash (HMAC-SHA256) of the normalised code with a
random key kept in the data folder (``.pseudonym-key``, created once, readable by the
owner only). The same code gives the same pseudonym in that data folder, so a
participant's sessions stay linked, but the code cannot be read back from the files, and
nobody without the key can test a guessed code against them. Keep the key with the data
to link later sessions; delete it to make the pseudonyms unlinkable for good.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
from pathlib import Path

KEY_FILE = ".pseudonym-key"
_CODE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.\-]{0,63}$")


class ParticipantCodeError(ValueError):
    """A participant code that cannot be used; the message says why."""


def normalise_code(code: str) -> str:
    """``code`` stripped and upper-cased; ParticipantCodeError when it is empty or odd."""
    c = " ".join(str(code).split()).upper()
    if not c:
        raise ParticipantCodeError("Enter the participant's code.")
    if not _CODE_RE.match(c):
        raise ParticipantCodeError("A participant code is 1-64 letters, digits, spaces, '-', '_' or '.'.")
    return c


def pseudonym_key(folder: str | os.PathLike) -> bytes:
    """The data folder's pseudonym key (made on first use)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / KEY_FILE
    try:
        text = path.read_text(encoding="ascii").strip()
        key = bytes.fromhex(text)
        if len(key) >= 16:
            return key
        raise ValueError("too short")
    except FileNotFoundError:
        pass
    except (OSError, ValueError) as exc:
        raise ParticipantCodeError(f"the pseudonym key {path} is damaged ({exc}); restore it from a backup "
                                   f"(a new key would give every participant a new pseudonym)") from exc
    key = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(key.hex() + "\n")
    return key


def existing_key(folder: str | os.PathLike) -> bytes | None:
    """The data folder's pseudonym key, or None when it has none (nobody was recorded there
    yet); never makes one. ParticipantCodeError when it is damaged."""
    path = Path(folder) / KEY_FILE
    if not path.is_file():
        return None
    return pseudonym_key(folder)


def pseudonym(code: str, key: bytes) -> str:
    """``P-`` and 10 base32 characters of HMAC-SHA256(key, normalised code)."""
    digest = hmac.new(key, normalise_code(code).encode("utf-8"), hashlib.sha256).digest()
    return "P-" + base64.b32encode(digest).decode("ascii")[:10]
