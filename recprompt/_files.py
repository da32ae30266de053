"""Output files that a crash, a failure or a second writer cannot tear or destroy.

Every file recprompt writes is first written in full to a uniquely named temporary file in the
same folder, flushed and fsync'ed, then renamed over the target (atomic on POSIX within one
filesystem). A run killed or failing mid-write leaves the old file or the new one, never half
of either and never an empty one; two writers each rename a complete file of their own, so a
reader sees one of the two, never a mix. A folder that a run appends to (``eval --out``) is
guarded by an exclusive lock, held for the whole run.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from recprompt.errors import InputError

__all__ = [
    "atomic_writer",
    "check_output_path",
    "check_replaceable",
    "exclusive_lock",
    "open_regular",
    "special_kind",
    "write_bytes_atomic",
    "write_text_atomic",
]

LOCK_NAME = ".recprompt.lock"
_HELD: set[tuple[str, int]] = set()
"""(lock file, thread) pairs this process holds: the same thread may lock again."""


def _umask() -> int:
    """The process umask (read once: setting it is the only way to read it)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


_MODE = 0o666 & ~_umask()

_KINDS = (
    (stat.S_ISLNK, "a symbolic link"),
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _kind(mode: int) -> str | None:
    """None for a regular file, else what the file is, in words."""
    if stat.S_ISREG(mode):
        return None
    return next((words for test, words in _KINDS if test(mode)), "not a regular file")


def special_kind(path: str | Path, *, follow: bool = True) -> str | None:
    """What ``path`` is when it exists and is not a regular file (``"a named pipe (FIFO)"``);
    None for a regular file or a missing path. ``follow=False`` counts a symlink as special."""
    try:
        info = os.stat(path) if follow else os.lstat(path)
    except (OSError, ValueError):  # missing, unreadable, or a NUL in the name: not our call
        return None
    return _kind(info.st_mode)


def open_regular(path: str | Path) -> IO[bytes]:
    """Open ``path`` for reading in binary, refusing anything but a regular file.

    Opening a named pipe would wait for a writer forever, and a device may never end: the
    file is opened without blocking and checked on its descriptor (no race with a rename).
    A refusal is an :class:`OSError` whose ``strerror`` says what the file is, so callers'
    existing "cannot read" handling reports it.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        kind = _kind(os.fstat(fd).st_mode)
        if kind is not None:
            raise OSError(errno.EINVAL, f"it is {kind}, not a regular file", str(path))
        os.set_blocking(fd, True)
        return open(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def check_replaceable(path: str | Path, *, flag: str | None = None) -> None:
    """Refuse an existing ``path`` that is not a regular file (a symlink included), or that
    is read-only.

    Outputs are replaced whole by a rename, which would put a plain file in place of a
    symlink (not writing through it), a named pipe or a device such as ``/dev/stdout``, and
    which succeeds on a file without write permission (always, for root).
    """
    kind = special_kind(path, follow=False)
    what = f"{flag} {path}" if flag else str(path)
    if kind is None:
        with contextlib.suppress(OSError, ValueError):
            if not os.lstat(path).st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH):
                raise InputError(
                    f"{what} is read-only: recprompt would replace it",
                    hint="pass another path, or make it writable (chmod u+w) to replace it",
                )
        return
    raise InputError(
        f"{what} is {kind}, not a regular file: recprompt replaces its output files whole "
        "and would replace it",
        hint="pass the path of a regular file, or of one that does not exist yet",
    )


@contextlib.contextmanager
def atomic_writer(path: str | Path, mode: str = "w") -> Iterator[IO[Any]]:
    """A handle on a fresh temporary sibling of ``path``; renamed over ``path`` on success.

    If the block raises (or the process dies), ``path`` is untouched and the temporary file is
    removed (or, after a kill, left as a hidden ``.NAME.*.tmp`` that nothing reads). An
    existing ``path`` that is not a regular file is refused before anything is written.
    """
    path = Path(path)
    check_replaceable(path)
    try:
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise InputError(
            f"cannot write {path}: {exc.strerror or exc}",
            hint="choose a writable location that exists",
        ) from None
    tmp = Path(name)
    try:
        os.fchmod(fd, _MODE)  # mkstemp makes 0600; outputs get the usual permissions
        encoding = None if "b" in mode else "utf-8"
        with open(fd, mode, encoding=encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Replace ``path`` with ``text`` whole, or leave it as it was (see the module docstring)."""
    path = Path(path)
    with atomic_writer(path, "w") as handle:
        handle.write(text)
    return path


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Binary twin of :func:`write_text_atomic`."""
    path = Path(path)
    with atomic_writer(path, "wb") as handle:
        handle.write(data)
    return path


def _same(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and a.samefile(b)
    except OSError:
        return False


def _real(path: str | Path) -> Path:
    return Path(os.path.realpath(Path(path).expanduser()))


def _check_apart(
    path: Path, targets: list[Path], trees: Iterable[str | Path], *, folder: bool, flag: str
) -> None:
    """Refuse outputs inside a folder the command reads, or (``folder``) around one."""
    hint = f"pass an {flag} outside it"
    for given in trees:
        tree = _real(given)
        for target in targets:
            if _real(target).is_relative_to(tree):
                raise InputError(
                    f"{flag} {target} lies inside {given}, which this command reads; "
                    "its files must not be overwritten or mixed with outputs",
                    hint=hint,
                )
        if folder and tree.is_relative_to(_real(path)):
            raise InputError(
                f"{flag} {path} contains {given}, which this command reads: "
                "outputs must not be written among its data",
                hint=hint,
            )


def check_output_path(
    path: Path,
    *,
    flag: str = "--out",
    folder: bool = False,
    inputs: Iterable[str | Path | None] = (),
    writes: Iterable[str] = (),
    siblings: Iterable[Path] = (),
    apart_from: Iterable[str | Path] = (),
    make_parents: bool = False,
    check_name: Callable[[Path], object] | None = None,
) -> Path:
    """Refuse, before any work, an output path that cannot be written or would destroy input.

    ``folder`` outputs may exist as folders (and are created with their parents); file outputs
    must not be folders and need an existing parent folder, unless ``make_parents`` (then the
    nearest existing ancestor must be a folder, and the missing folders are made last, once
    every check passed). ``inputs`` are the files the
    command reads: writing over one of them (``dry-run SPEC --out SPEC``) is refused, and so
    is a folder output whose ``writes`` (the file names it will write) include an input.
    ``siblings`` are further files a file output writes beside it (``compare``'s ``.json``).
    ``apart_from`` are folders the command reads: no output may lie inside one, and a folder
    output may not contain one either. A file to be written that exists must be a regular
    file (not a symlink, a named pipe or a device): outputs are replaced whole.
    ``check_name`` (raising on a bad file name) runs after those checks and before any
    folder is made, so a refused name leaves nothing behind.
    """
    hint = f"pass another {flag}"
    where = str(path)
    if folder:
        if path.exists() and not path.is_dir():
            raise InputError(f"{flag} {where} is a file, not a folder", hint=hint)
        targets = [path / name for name in writes]
    else:
        if path.is_dir():
            raise InputError(f"{flag} {where} is a folder; it must name a file", hint=hint)
        parent = path.parent
        while make_parents and not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if parent.exists() and not parent.is_dir():
            raise InputError(f"{flag} {where}: {parent} is not a folder", hint=hint)
        if not parent.is_dir():
            raise InputError(
                f"{flag} {where}: the folder {parent} does not exist",
                hint=f"create it first (mkdir -p {parent}), or {hint}",
            )
        targets = [path, *siblings]
    for given in inputs:
        if given is None:
            continue
        source = Path(given)
        for target in [path, *targets]:
            if _same(source, target):
                raise InputError(
                    f"{flag} {where} would overwrite {source}, which this command reads",
                    hint=hint,
                )
    _check_apart(path, targets, apart_from, folder=folder, flag=flag)
    for target in targets:
        check_replaceable(target, flag=flag)
    probe = path if folder and path.is_dir() else path.parent
    if probe.exists() and not os.access(probe, os.W_OK):
        raise InputError(f"{flag} {where}: {probe} is not writable", hint=hint)
    if check_name is not None:
        check_name(path)
    if make_parents and not folder:  # made now: a folder that cannot be made (in /proc, say)
        try:  # would otherwise fail only when the result is saved, after all the work
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(
                f"{flag} {where}: cannot make the folder {path.parent}: {exc.strerror or exc}",
                hint=hint,
            ) from None
    return path


@contextlib.contextmanager
def exclusive_lock(
    folder: Path,
    *,
    flag: str = "--out",
    name: str = LOCK_NAME,
    target: Path | None = None,
    hint: str | None = None,
) -> Iterator[Path]:
    """Hold an exclusive ``flock`` on ``folder/name`` (``.recprompt.lock``) for the block.

    ``target``: the file the lock guards, when it guards one file of ``folder`` rather than
    the folder (``optimize --out FILE``); errors name it. ``hint``: what to do when another
    run holds the lock (default: wait and rerun to resume).

    A second run on the same folder stops at once with a clear error rather than waiting:
    waiting silently would look like a hang, and both runs would pay for the same calls. The
    lock is released by the kernel when the holder exits, even after ``kill -9``. The thread
    that holds it may take it again (the CLI locks before loading a model, then evaluates).
    """
    path = folder / name
    key = (os.path.realpath(path), threading.get_ident())
    if key in _HELD:
        yield path
        return
    if path.is_symlink():  # never follow it: the lock would truncate whatever it points to
        raise InputError(
            f"{path} is a symbolic link, not a recprompt lock file",
            hint=f"remove it, or pass another {flag}",
        )
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, _MODE)
    except OSError as exc:
        raise InputError(
            f"cannot write to {flag} {folder}: {exc.strerror or exc}",
            hint=f"pass a writable folder as {flag}",
        ) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "unknown"
            raise InputError(
                f"another recprompt run (pid {holder}) is writing to {flag} "
                f"{folder if target is None else target}",
                hint=hint or "wait for it to finish and rerun to resume, or pass another " + flag,
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        _HELD.add(key)
        try:
            yield path
        finally:
            _HELD.discard(key)
    finally:
        os.close(fd)  # closing the descriptor releases the lock
