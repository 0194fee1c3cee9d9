"""Where the master key comes from: `RESEARCHDESK_SECRET_KEY`, or else a key file.

The setting, when given, is the key (the same value on every host of a deployment). Otherwise
the key is the text of a key file (`RESEARCHDESK_SECRET_KEY_FILE`; by default
`researchdesk.secret` beside the SQLite database, or in the working directory), created on
first use with a random key. The file holds base64 text, so its content can be copied into
`RESEARCHDESK_SECRET_KEY` as is: both give the same key. The key is never logged; where it
came from is.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import secrets
from pathlib import Path

from sqlalchemy.engine import make_url

from researchdesk.config import Settings
from researchdesk.master_key import MIN_KEY_CHARS, MasterKey

logger = logging.getLogger(__name__)

KEY_FILE_NAME = "researchdesk.secret"
_FILE_KEY_BYTES = 32
"""Random bytes in a key file's key (written as their base64 text)."""


class MasterKeyError(RuntimeError):
    """The key file cannot be read or created, or holds no usable key."""


def load_master_key(settings: Settings) -> MasterKey:
    """The key `RESEARCHDESK_SECRET_KEY` gives, or else the key file's (created if missing)."""
    if settings.secret_key is not None:
        logger.info("master key: from RESEARCHDESK_SECRET_KEY")
        return MasterKey.from_text(settings.secret_key.get_secret_value())
    path = key_file_path(settings)
    if make_url(settings.database_url).get_backend_name() != "sqlite":
        # Each host would otherwise make a key of its own, and sign with secrets nobody has.
        logger.warning(
            "master key: from the key file %s; with several hosts on one database, set "
            "RESEARCHDESK_SECRET_KEY to the same value on every host instead",
            path,
        )
    else:
        logger.info("master key: from the key file %s", path)
    return MasterKey.from_text(read_or_create_key_file(path))


def master_key_source(settings: Settings) -> str:
    """Where `load_master_key` takes the key from, in words."""
    if settings.secret_key is not None:
        return "RESEARCHDESK_SECRET_KEY"
    return f"the key file {key_file_path(settings)}"


def key_file_path(settings: Settings) -> Path:
    """`RESEARCHDESK_SECRET_KEY_FILE`, or `researchdesk.secret` in the SQLite database's
    directory (the working directory for PostgreSQL or an in-memory SQLite database)."""
    if settings.secret_key_file is not None:
        return settings.secret_key_file
    url = make_url(settings.database_url)
    database = url.database or ""
    if url.get_backend_name() == "sqlite" and database and database != ":memory:":
        return Path(database.removeprefix("file:")).parent / KEY_FILE_NAME
    return Path(KEY_FILE_NAME)


def read_or_create_key_file(path: Path) -> str:
    """The key text in `path`; if there is no such file, one is created with a new key.

    Processes starting at once agree on one key: each writes its candidate to a temporary file
    of its own and hard-links it to `path`, which fails if `path` exists; the loser reads the
    winner's. A reader never sees a half-written file, since `path` only ever names a complete
    one. The file is readable by its owner only (0600).
    """
    try:
        return _read(path)
    except FileNotFoundError:
        pass
    candidate = base64.b64encode(secrets.token_bytes(_FILE_KEY_BYTES)).decode()
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    try:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(candidate + "\n")
            file.flush()
            os.fsync(file.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            return _read(path)  # another process created it first: its key is the key
        _sync_directory(path.parent)
        logger.info("master key: created the key file %s", path)
        return candidate
    except OSError as exc:
        raise MasterKeyError(
            f"cannot create the key file {path} ({exc.strerror or exc}); set "
            "RESEARCHDESK_SECRET_KEY, or RESEARCHDESK_SECRET_KEY_FILE to a writable place"
        ) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()


def _read(path: Path) -> str:
    """The key text in `path`; FileNotFoundError when there is none yet (to create it)."""
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise
    except (OSError, UnicodeError) as exc:
        raise MasterKeyError(f"cannot read the key file {path}: {exc}") from None
    if len(text) < MIN_KEY_CHARS:
        raise MasterKeyError(
            f"the key file {path} holds no key of at least {MIN_KEY_CHARS} characters"
        )
    if mode & 0o077:
        logger.warning("the key file %s is open to others than its owner: chmod 600 it", path)
    return text


def _sync_directory(directory: Path) -> None:
    """Make the new file's name durable (a crash must not lose a key already in use)."""
    with contextlib.suppress(OSError):  # not every file system can open a directory
        descriptor = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
