"""One writer per run folder: a lock file that names its owner and notices when the owner is gone.

``with RunLock(folder):`` creates ``folder/racecar.lock`` holding the owner's process id, host and start
time, and holds an OS lock on it (``fcntl.flock``) for as long as the block runs. A second run into the
same folder, from this process or any other, is refused with :class:`RunLockedError` naming the folder
and the owner. The OS releases the lock when its owner dies however it dies (crash, ``kill -9``, a
kernel restart), so a lock file left behind is taken over, with a warning naming the dead owner.

Where ``flock`` is not available (no ``fcntl``, or a file system that refuses it), the owner's process id
decides instead: a lock of a process that no longer runs on this host is taken over, anything else is
refused (our choice: a lock from another host cannot be checked, so the message says to delete it if no
run is using the folder).
"""

from __future__ import annotations

import datetime as _dt
import errno
import json
import os
import socket
import warnings
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

LOCK_NAME = "racecar.lock"

__all__ = ["LOCK_NAME", "RunLock", "RunLockedError", "StaleLockWarning"]


class RunLockedError(RuntimeError):
    """Another run is writing into the same run folder."""


class StaleLockWarning(UserWarning):
    """A lock left by a run that no longer exists was taken over."""


def _owner_text(info: dict | None) -> str:
    if not info:
        return "an unknown owner"
    return f"process {info.get('pid')} on host {info.get('host')!r} (started {info.get('started', '?')})"


def _read_owner(path: Path) -> dict | None:
    try:
        info = json.loads(path.read_text(encoding="utf-8") or "null")
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def _pid_alive(pid) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


class RunLock:
    """Exclusive use of ``folder`` by one run (see the module docstring). Re-entrant use is refused."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self._fd: int | None = None

    def _refuse(self, owner: dict | None) -> RunLockedError:
        return RunLockedError(
            f"run folder {self.folder} is in use by {_owner_text(owner)}: two runs must not write into one folder. "
            f"Wait for that run to finish, or choose another run folder; if no run is using it, delete {self.path}"
        )

    def acquire(self) -> RunLock:
        if self._fd is not None:
            raise self._refuse(_read_owner(self.path))
        self.folder.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                flocked = self._flock(fd)
                if flocked and not self._same_file(fd):
                    os.close(fd)  # the previous owner removed the file between our open and our lock: again
                    continue
                previous = _read_owner(self.path)
                if not flocked:
                    self._check_by_pid(previous)
                if previous and previous.get("pid") is not None:
                    warnings.warn(f"{self.path}: taking over the lock left by {_owner_text(previous)}, "
                                  "which no longer runs", StaleLockWarning, stacklevel=3)
                self._write_owner(fd)
            except BaseException:
                os.close(fd)
                raise
            self._fd = fd
            return self

    def _flock(self, fd: int) -> bool:
        """True: we hold the OS lock. False: flock is unavailable here. Raises if another run holds it."""
        if fcntl is None:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise self._refuse(_read_owner(self.path)) from None
        except OSError as error:
            if error.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                return False
            raise
        return True

    def _same_file(self, fd: int) -> bool:
        try:
            return os.path.samestat(os.fstat(fd), os.stat(self.path))
        except FileNotFoundError:
            return False

    def _check_by_pid(self, previous: dict | None) -> None:
        if previous is None:
            if self.path.stat().st_size:  # unreadable content, no way to tell whether its owner runs
                raise self._refuse(None)
            return
        if previous.get("host") != socket.gethostname() or _pid_alive(previous.get("pid")):
            raise self._refuse(previous)

    def _write_owner(self, fd: int) -> None:
        info = {"pid": os.getpid(), "host": socket.gethostname(),
                "started": _dt.datetime.now().astimezone().isoformat(timespec="seconds")}
        data = (json.dumps(info) + "\n").encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)

    def release(self) -> None:
        """Remove the lock file and release the OS lock (in that order, so a waiting run never locks a
        file that is about to disappear: it re-checks the path after locking)."""
        if self._fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)
        finally:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
