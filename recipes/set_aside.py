"""Files of a run folder moved out of the way, to be deleted or put back: what `train --overwrite` does first.

`SetAside(folder).move(names)` renames those of `names` that exist into
`<folder>/.earlier-run/` (renames within one folder: no copy, and a kill
leaves each file either here or there); `discard()` deletes them,
`put_back()` renames them back over what took their names since.
"""

import os
import shutil

FOLDER = ".earlier-run"


class SetAside:
    """The files of `folder` set aside in `<folder>/.earlier-run/`.

    Args:
        folder: str. The run folder.
    """

    def __init__(self, folder):
        self.folder = folder
        self.path = os.path.join(folder, FOLDER)

    def exists(self):
        return os.path.isdir(self.path)

    def move(self, names):
        """Sets aside those of `names` (in the folder) that exist; returns them."""
        os.makedirs(self.path, exist_ok=True)
        moved = [name for name in names if os.path.exists(os.path.join(self.folder, name))]
        for name in moved:
            os.rename(os.path.join(self.folder, name), os.path.join(self.path, name))
        return moved

    def put_back(self):
        """Puts every file set aside back in its place (replacing what is there now); returns whether any was."""
        if not self.exists():
            return False
        for name in os.listdir(self.path):
            current = os.path.join(self.folder, name)
            if os.path.isdir(current):
                shutil.rmtree(current)
            elif os.path.exists(current):
                os.remove(current)
            os.rename(os.path.join(self.path, name), current)
        os.rmdir(self.path)
        return True

    def discard(self):
        shutil.rmtree(self.path, ignore_errors=True)
