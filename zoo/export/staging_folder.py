"""Folders that appear whole or not at all, even when the writer is killed.

A task folder (`zoo.Task.save`) and an export version
(`zoo.export.versions.write_version`) are written into a hidden staging
folder beside their destination and renamed into place:

    <parent>/.<name>.staging-<16 hex>/
        .lock    held (`flock`) by the writing process for as long as it lives
        new/     what is being written; renamed to <parent>/<name> when whole
        old/     the folder being replaced, moved aside just before

Replacing a folder takes two renames (`<name>` -> `old/`, `new/` ->
`<name>`): no POSIX call swaps two directories portably. A kill between them
leaves no `<name>`, but `old/` and `new/` are both whole (the swap starts
only once `new/` is written and synced), so `settle` completes the swap:
`load` of a missing folder and every later save or export into the same
parent call it. (An exception between the renames, which the writer lives
to see, rolls the swap back instead.) A kill at any other point leaves the
old folder, or the new one, under the name.

`settle` removes the staging folders of writers that are gone. Whether a
writer is gone is asked of the lock, never guessed from the folder's age:
the kernel drops an `flock` when its process dies, however it dies (kill -9
included), so a staging folder whose lock can be taken has no live writer,
and one whose lock is held is left alone. Where the file system has no
locks (`flock` fails), staging folders are kept: nothing can tell a dead
writer from a slow one there.

Written here because neither `tempfile` nor `shutil` publishes a directory
atomically or cleans up after a killed process.
"""

import errno
import os
import re
import secrets
import shutil

try:
    import fcntl
except ImportError:  # not POSIX: no locks, so nothing is ever judged abandoned
    fcntl = None

LOCK_FILE = ".lock"
_STAGING = re.compile(r"^\.(?P<name>.+)\.staging-[0-9a-f]{16}$")


def _try_lock(folder):
    """`(fd, state)`: state is "locked" (fd holds the lock), "held" (a live writer has it), "gone" (no such
    folder any more) or "unsupported" (the file system has no locks; fd is open, unlocked)."""
    path = os.path.join(folder, LOCK_FILE)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except (FileNotFoundError, NotADirectoryError):
        return None, "gone"
    except OSError:  # another user's folder, a read-only file system: not ours to judge
        return None, "held"
    if fcntl is None:
        return fd, "unsupported"
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        if error.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
            os.close(fd)
            return None, "held"
        return fd, "unsupported"
    try:  # the folder may have been removed (and its lock file with it) while we waited for the lock
        same = os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        same = False
    if not same:
        os.close(fd)
        return None, "gone"
    return fd, "locked"


def sync_tree(path):
    """`fsync`s every file and folder under `path`, so a rename that follows never publishes
    data that a power cut could still take back."""
    for root, folders, files in os.walk(path):
        for name in files:
            fd = os.open(os.path.join(root, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _sync_folder(root)


def _sync_folder(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:  # some file systems cannot fsync a folder; the rename is still atomic
        pass
    finally:
        os.close(fd)


def settle(parent):
    """Completes the interrupted swaps in `parent` and removes the staging folders of writers that are gone.

    A staging folder whose writer still runs (its lock is held) is left
    alone. Returns the destinations whose swap it completed.
    """
    try:
        entries = os.listdir(parent)
    except OSError:  # no such folder, or not ours to read
        return []
    completed = []
    for entry in sorted(entries):
        match = _STAGING.match(entry)
        folder = os.path.join(parent, entry)
        if not match or not os.path.isdir(folder):
            continue
        fd, state = _try_lock(folder)
        if state != "locked":
            if fd is not None:
                os.close(fd)
            continue
        try:
            destination = os.path.join(parent, match["name"])
            new, old = os.path.join(folder, "new"), os.path.join(folder, "old")
            if not os.path.lexists(destination) and os.path.isdir(old) and os.path.isdir(new):
                try:
                    os.rename(new, destination)  # killed between its two renames: finish the swap
                except OSError:  # e.g. a read-only parent: keep both folders for a later try
                    continue
                _sync_folder(parent)
                completed.append(destination)
            shutil.rmtree(folder, ignore_errors=True)
        finally:
            os.close(fd)
    return completed


def leftovers(parent, name):
    """The staging folders in `parent` for the destination `name` (live or not), for error messages."""
    try:
        entries = os.listdir(parent)
    except OSError:  # no such folder, or not ours to read
        return []
    return sorted(e for e in entries if (m := _STAGING.match(e)) and m["name"] == name)


class StagingFolder:
    """A hidden, locked folder beside `destination` in which it is written whole, then renamed into place.

    Entering settles `destination`'s parent (see `settle`) and creates the
    staging folder; `new` is the path to write (it does not exist yet);
    `publish` renames it into place, replacing an existing destination
    only when asked. Leaving removes the staging folder, with the replaced
    destination in it, whether or not `publish` ran; if an exception
    stopped `publish` between its two renames, the replaced destination is
    put back first.

    Args:
        destination: str. The folder to write.

    Example:

    >>> import os, tempfile
    >>> parent = tempfile.mkdtemp()
    >>> with StagingFolder(os.path.join(parent, "folder")) as staging:
    ...     os.makedirs(staging.new)
    ...     _ = open(os.path.join(staging.new, "file.txt"), "w").write("whole")
    ...     path = staging.publish()
    >>> os.listdir(parent), open(os.path.join(parent, "folder", "file.txt")).read()
    (['folder'], 'whole')
    """

    def __init__(self, destination):
        self.destination = os.path.abspath(os.fspath(destination))
        self.parent, self.name = os.path.split(self.destination)
        if not self.name or self.name.startswith("."):
            raise ValueError(f"destination must end in a plain folder name. Received: {destination!r}")
        self.path = None
        self._fd = None

    @property
    def new(self):
        """Where to write the folder; `publish` moves it to `destination`."""
        return os.path.join(self.path, "new")

    def __enter__(self):
        os.makedirs(self.parent, exist_ok=True)
        settle(self.parent)
        for _ in range(100):
            path = os.path.join(self.parent, f".{self.name}.staging-{secrets.token_hex(8)}")
            try:
                os.mkdir(path)
            except FileExistsError:
                continue
            fd, state = _try_lock(path)
            if state in ("locked", "unsupported"):
                self.path, self._fd = path, fd
                return self
            # Another process's `settle` took the lock in the instant between mkdir and lock: it
            # removes the folder. Try another name.
        raise RuntimeError(f"Could not create a staging folder in {self.parent}.")

    def publish(self, replace=False):
        """Renames `new` to `destination` (moving an existing destination aside first if `replace`)."""
        if not os.path.isdir(self.new):
            raise FileNotFoundError(f"Nothing was written to publish as {self.destination} (missing {self.new}).")
        sync_tree(self.new)
        if os.path.lexists(self.destination):
            if not replace:
                raise FileExistsError(f"{self.destination} appeared while writing it; not replacing it.")
            os.rename(self.destination, os.path.join(self.path, "old"))
        os.rename(self.new, self.destination)
        _sync_folder(self.parent)
        return self.destination

    def __exit__(self, *exc):
        try:
            old = os.path.join(self.path, "old")
            if os.path.isdir(old) and not os.path.lexists(self.destination):
                os.rename(old, self.destination)  # stopped between the two renames (an error, Ctrl-C): roll back
            shutil.rmtree(self.path, ignore_errors=True)
        finally:
            os.close(self._fd)
