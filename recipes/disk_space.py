"""Writes that never leave half a file, and errors that say when a disk or a file-size limit is full.

`write_json` writes a small file whole (into a file beside it, synced, then
renamed over it). `out_of_space` turns the error a write raised on a full
disk (ENOSPC, EDQUOT) or past `ulimit -f` (EFBIG) into one line naming the
folder and the space needed: h5py, TensorFlow and Python raise them with
the system's message somewhere in a long text of their own.
"""

import contextlib
import errno
import gc
import io
import json
import os
import shutil
import sys

SPACE_ERRORS = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)


class OutOfSpaceError(OSError):
    """A write failed for want of disk space or under a file-size limit; the message names the folder."""


def write_json(path, data):
    """Writes `path` whole: into a file beside it, synced, then renamed over it."""
    partial = os.path.join(os.path.dirname(path) or ".", f".{os.path.basename(path)}.partial")
    try:
        with open(partial, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2)
            f.flush()
            os.fsync(f.fileno())
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.remove(partial)


def _megabytes(count):
    return f"{count / 1e6:.1f} MB"


def _space_errno(error):
    """ENOSPC, EFBIG or EDQUOT if `error` (or what caused it) is a full disk or a file-size limit, else None."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in SPACE_ERRORS:
            return error.errno
        for code in SPACE_ERRORS:  # TensorFlow's and h5py's own errors carry the system's message
            if os.strerror(code) in str(error):
                return code
        error = error.__cause__ or error.__context__
    return None


def out_of_space(error, writing, folder, needed=None, after="", free=None):
    """An `OutOfSpaceError` naming `folder` and the space needed, if `error` is a full disk or a file-size limit.

    `free`: the bytes free before the write (a failed write may hold the
    space it took until the process ends); by default, those free now.
    Returns None for any other error.
    """
    if isinstance(error, OutOfSpaceError):  # already says so
        return error
    code = _space_errno(error)
    if code is None:
        return None
    full = _error(code, writing, folder, needed, after, free)
    full.exit_at_once = getattr(error, "exit_at_once", False)
    return full


def check_room(writing, folder, needed, largest_file, after=""):
    """Raises `OutOfSpaceError` before a write of `needed` bytes (`largest_file` in one file) that cannot fit.

    Checking first matters for HDF5 files: h5py keeps a file whose write
    failed open, and closing it at exit crashes the process (segfault).
    """
    if _file_size_limit() < largest_file:
        raise _error(errno.EFBIG, writing, folder, largest_file, after)
    if free_bytes(folder) < needed:
        raise _error(errno.ENOSPC, writing, folder, needed, after)


@contextlib.contextmanager
def hdf5_write():
    """Runs an HDF5 write (Keras `save_weights`); a failure for want of room leaves nothing behind to crash.

    h5py keeps a file whose write failed open, in the frames of the error's
    traceback; freeing them closes it, which flushes once more and, on a full
    disk, prints tracebacks of its own and leaves the HDF5 library in a state
    that crashes the process at exit (a segfault). Here the failed write's
    frames are freed at once with what they print swallowed, and the error
    raised is marked `exit_at_once` (`recipes.common.command_line` then ends
    the process without running exit handlers). What a successful write
    prints is passed on.
    """
    printed, hook = io.StringIO(), sys.unraisablehook
    try:
        with contextlib.redirect_stderr(printed):
            sys.unraisablehook = lambda unraisable: None
            try:
                yield
            except BaseException as error:
                if _space_errno(error) is None:
                    raise
                cause = error
                while cause is not None:
                    cause.__traceback__ = None
                    cause = cause.__context__
                gc.collect()
                error.exit_at_once = True
                raise
    finally:
        sys.unraisablehook = hook
    sys.stderr.write(printed.getvalue())


def _file_size_limit():
    try:
        import resource
    except ImportError:  # not POSIX
        return float("inf")
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    return float("inf") if limit == resource.RLIM_INFINITY else limit


def free_bytes(folder):
    """The bytes free on the disk of `folder` (or of its nearest existing parent)."""
    while folder and not os.path.isdir(folder):
        folder = os.path.dirname(folder)
    return shutil.disk_usage(folder or ".").free


def _error(code, writing, folder, needed, after, free=None):
    need = f"; it needs about {_megabytes(needed)}" if needed else ""
    if code == errno.EFBIG:
        limit = _megabytes(_file_size_limit())
        cause = f"{os.strerror(code)}: past the file-size limit of {limit} that ulimit -f sets{need}"
    else:
        free = free_bytes(folder) if free is None else free
        cause = f"{os.strerror(code)}: {_megabytes(free)} free there{need}"
    return OutOfSpaceError(f"No room to write {writing} in {folder} ({cause}). {after}".strip())
