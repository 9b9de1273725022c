"""The data directory a daemon owns: locked for the process's life, checked writable before anything starts.

Two daemons on one directory would both append to the same write-ahead log and the first
one's events would never become searchable, so the second is refused at start, naming the
holder.  A directory written by another user (say, `keys create` run as root before the
service user ever started) is refused at start too, naming the file and the fix, instead of
answering 500s later.  CLI commands that write the state database (`keys`) take no lock: they
are safe beside a running daemon (SQLite's own locking).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import Final

from logtraced.errors import StartupError

LOCK_FILE: Final = "logtraced.lock"


class DataDirectory:
    """An exclusive lock on `<data_dir>/logtraced.lock`, held until `release` or the process ends."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd = fd

    @classmethod
    def acquire(cls, path: Path) -> DataDirectory:
        """Create the directory if needed, check it is ours to write, and lock it (or say who holds it)."""
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StartupError(f"cannot create the data directory {path}: {exc.strerror}") from exc
        check_writable(path)
        lock = path / LOCK_FILE
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise StartupError(
                f"the data directory {path} is in use by another logtraced (pid {holder}); "
                "stop it, or give this one its own --data-dir"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return cls(path, fd)

    def release(self) -> None:
        os.close(self._fd)  # closing the descriptor drops the lock


def tree_bytes(path: Path) -> int:
    """The size of every file below `path` (files vanishing meanwhile, as merged segments do, count nothing)."""
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.stat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def check_writable(path: Path) -> None:
    """Every directory and file below `path` must be writable by this process, or the start fails naming it."""
    for root, directories, files in os.walk(path):
        for name in [".", *directories, *files]:
            target = Path(root, name) if name != "." else Path(root)
            if not os.access(target, os.W_OK):
                raise StartupError(
                    f"{target} is not writable by this user (uid {os.getuid()}); "
                    f"give the daemon's user the data directory, e.g. chown -R logtraced: {path}"
                )
