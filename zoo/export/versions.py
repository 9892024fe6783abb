"""Version directories that TF Serving can watch: `<base>/<name>/<version>/`.

TF Serving loads the highest integer sub-directory of a model's base path and
hot-swaps when a higher one appears. So a version must never be overwritten
and must appear whole: we write into a hidden, non-numeric staging directory
beside it (which TF Serving ignores) and `os.rename` it into place, an atomic
step on POSIX file systems (`zoo.export.staging_folder`). A crash mid-export
leaves only the staging directory, never a half-written version, and the
next export of the same model removes it once its writer is gone.
"""

import os

from zoo.export.staging_folder import StagingFolder


class VersionExistsError(FileExistsError):
    """Raised instead of overwriting an exported version."""


def existing_versions(model_dir):
    """The integer versions already under `model_dir`, sorted."""
    if not os.path.isdir(model_dir):
        return []
    return sorted(int(d) for d in os.listdir(model_dir) if d.isdigit())


def next_version(model_dir):
    """One more than the highest existing version (1 for a new model)."""
    versions = existing_versions(model_dir)
    return versions[-1] + 1 if versions else 1


def write_version(base, name, write_fn, version=None):
    """Calls `write_fn(staging_dir)`, then moves the result to `<base>/<name>/<version>`.

    Args:
        base: str. Model base directory (TF Serving's `--model_base_path` parent).
        name: str. Model name (the `<name>` of `/v1/models/<name>:predict`).
        write_fn: callable writing a complete SavedModel into the directory
            it is given (which does not exist yet).
        version: int. Defaults to the next free version.

    Returns:
        The path of the new version directory.

    Raises:
        VersionExistsError: if `version` already exists.
    """
    if not name or os.sep in name or name.startswith("."):
        raise ValueError(f"Model name must be a plain directory name. Received: name={name!r}")
    model_dir = os.path.join(base, name)
    os.makedirs(model_dir, exist_ok=True)
    version = next_version(model_dir) if version is None else int(version)
    if version < 1:
        raise ValueError(f"Versions are positive integers. Received: version={version}")
    final = os.path.join(model_dir, str(version))
    if os.path.exists(final):
        raise VersionExistsError(f"{final} exists; exported versions are never overwritten. Existing: "
                                 f"{existing_versions(model_dir)}")
    with StagingFolder(final) as staging:
        write_fn(staging.new)
        if os.path.exists(final):  # another export won the race
            raise VersionExistsError(f"{final} appeared while exporting; not overwriting it")
        staging.publish()
    return final
