"""Writes that never leave half a file, and errors that say when a disk or a file-size limit is full.

`write_json` writes a small file whole (into a file beside it, synced, then
renamed over it). `out_of_space` turns the error a write raised on a full
disk (ENOSPC, EDQUOT) or past `ulimit -f` (EFBIG) into one line naming the
folder and the space needed: h5py, TensorFlow and Python raise them with
the system's message somewhere in a long text of their own.
"""

import errno
import json
import os
import shutil

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


def out_of_space(error, writing, folder, needed=None, after=""):
    """An `OutOfSpaceError` naming `folder` and the space needed, if `error` is a full disk or a file-size limit.

    Returns None for any other error.
    """
    if isinstance(error, OutOfSpaceError):  # already says so
        return error
    code = _space_errno(error)
    if code is None:
        return None
    need = f"; it needs about {_megabytes(needed)}" if needed else ""
    if code == errno.EFBIG:
        import resource

        limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
        shown = "unlimited" if limit == resource.RLIM_INFINITY else _megabytes(limit)
        cause = f"a file grew past the file-size limit (ulimit -f) of {shown}{need}"
    else:
        free = shutil.disk_usage(folder if os.path.isdir(folder) else os.path.dirname(folder) or ".").free
        cause = f"{os.strerror(code)}: {_megabytes(free)} free there{need}"
    return OutOfSpaceError(f"No room to write {writing} in {folder} ({cause}). {after}".strip())
