"""One `train` at a time on a run folder.

`train_lock(folder)` holds `<folder>/.train.pid`, which names the process
that trains there: a second `train` on the folder is refused while that
process lives, and takes the file over once it does not (it was killed).
Written here because the standard library has no portable lock that names
its holder; the pid is what the refusal tells the user.
"""

import contextlib
import os

LOCK_FILE = ".train.pid"


@contextlib.contextmanager
def train_lock(folder):
    """Holds `<folder>/.train.pid` during the block.

    A folder made for the file alone is removed with it, so a `train`
    refused before it wrote anything leaves nothing behind.

    Raises:
        FileExistsError: another live process trains in `folder`.
    """
    made = not os.path.isdir(folder)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, LOCK_FILE)
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            break
        except FileExistsError:
            owner = _pid_in(path)
            if owner is not None and _alive(owner):
                raise FileExistsError(f"Another train (process {owner}) is running on {folder}; wait for it to "
                                      f"end, or stop it.") from None
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)  # left by a process that was killed
    else:
        raise FileExistsError(f"Could not take {path}: another train keeps taking it.")
    with os.fdopen(fd, "w") as f:
        f.write(str(os.getpid()))
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)
        if made and not os.listdir(folder):
            os.rmdir(folder)


def _pid_in(path):
    try:
        with open(path, encoding="utf-8") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True
