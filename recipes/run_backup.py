"""The training state of a run at each epoch's end, written so that no crash leaves only a broken copy.

`<output>/backup/epoch-0003/` holds the state after epoch 3 (a generation):

- `model.weights.h5`: Keras' `save_weights`, the weights and the optimizer's
  state (its step count, hence the learning rate);
- `best.weights.h5`: early stopping's best weights so far (a hard link to
  `checkpoints/best.weights.h5` as it was then: no copy on disk);
- `lora.npz` (a model with LoRA on, `--lora-rank`): the weights of its
  LoRA layers as they are, now and at early stopping's best epoch. Keras'
  weights files hold such a layer's kernel with the LoRA update merged in,
  and loading one sets the LoRA weights to zero (no gradient reaches a
  product of two zero matrices: a resumed run would train no more);
- `state.json`: the epoch, batches drawn, seconds trained, early stopping's
  state (`wait`, `best`, `best_epoch`, `stopped_epoch`), the model's seed
  generator states (dropout, stochastic depth), the paths of the LoRA
  layers' weights, and the sha256 of each file.

A generation is written into `backup/.epoch-0003.partial/`, synced, then
renamed into place (atomic on POSIX): a directory under its final name is
whole, and its checksums catch damage done later. While training runs the
two newest are kept, so a damaged newest one falls back to the one before
(`latest_generation`); when training ends, the last one is kept, from which
more `--epochs` continue the run. `checkpoints/best.weights.h5` is replaced
the same way (written beside it, renamed over it).

Written here rather than with Keras' `BackupAndRestore` (in place, no
callback or seed state) and `ModelCheckpoint` (in place, its best value
restarts with each `fit`): see `recipes.training`.
"""

import hashlib
import json
import os
import re
import shutil
import time
import typing

import numpy as np

from recipes import common, disk_space

WEIGHTS, BEST, LORA, STATE = "model.weights.h5", "best.weights.h5", "lora.npz", "state.json"
FORMAT_VERSION = 1
_NAME = re.compile(r"^epoch-(\d+)$")


class Generation(typing.NamedTuple):
    """A complete backup: the epochs it follows, its directory and its `state.json`."""

    epoch: int
    path: str
    state: dict


def generation_path(backup_dir, epoch):
    return os.path.join(backup_dir, f"epoch-{epoch:04d}")


def generation_dirs(backup_dir):
    """`[(epoch, path)]` of the generations under `backup_dir`, oldest first (not checked)."""
    if not os.path.isdir(backup_dir):
        return []
    found = [(int(m[1]), os.path.join(backup_dir, name)) for name in os.listdir(backup_dir) if (m := _NAME.match(name))]
    return sorted(found)


def leftovers(backup_dir):
    """Hidden directories under `backup_dir`: generations a killed or failed write left half-written."""
    if not os.path.isdir(backup_dir):
        return []
    return sorted(os.path.join(backup_dir, name) for name in os.listdir(backup_dir) if name.startswith("."))


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_generation(path):
    """The `state.json` of the generation at `path`, its files checked; ValueError says what is wrong."""
    try:
        state = common.read_json_object(os.path.join(path, STATE), "a backup state")
    except OSError as error:
        raise ValueError(f"its {STATE} does not read ({error})") from None
    if state.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"its {STATE} is not a backup state of format version {FORMAT_VERSION}")
    for name, digest in state.get("files", {}).items():
        file = os.path.join(path, name)
        if not os.path.isfile(file):
            raise ValueError(f"{name} is missing")
        if sha256(file) != digest:
            raise ValueError(f"{name} does not match its checksum")
    return state


def latest_generation(backup_dir, report=print):
    """The newest generation that reads whole, or None; each damaged newer one is named through `report`."""
    for epoch, path in reversed(generation_dirs(backup_dir)):
        try:
            return Generation(epoch, path, read_generation(path))
        except ValueError as error:
            report(f"warning: the backup {path} is damaged ({error}); using an earlier one if there is one")
    return None


def prune(backup_dir, keep):
    """Removes all but the `keep` newest generations, and half-written ones."""
    for _, path in generation_dirs(backup_dir)[:-keep]:
        shutil.rmtree(path, ignore_errors=True)
    for path in leftovers(backup_dir):
        shutil.rmtree(path, ignore_errors=True)


def _sync(path):
    """fsync a file or a directory (a rename is durable once its directory is synced)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def seed_variables(model):
    """The model's variables that are not weights: its seed generators' states (dropout, stochastic depth)."""
    weights = {id(v) for v in model.weights}
    return [v for v in model.variables if id(v) not in weights]


def lora_variables(model):
    """The weights of the model's layers with LoRA on, which Keras' weights files do not hold as they are
    (`lora.npz` in the module docstring)."""
    from zoo.tasks.fine_tuning import lora_layers

    return [v for layer in lora_layers(model, enabled=True) for v in layer.weights]


class RunBackup:
    """Writes a generation at each epoch's end and restores one when a run resumes.

    `callback()` is the Keras callback to pass to `fit` after
    `early_stopping` (whose state is restored after its own
    `on_train_begin` resets it).

    Args:
        run: `recipes.run_folder.RunFolder`. The run: its folder, the
            generation to resume from (`run.resume`), and what the first
            generation of a run commits (`run.commit`).
        model: the compiled Keras model.
        early_stopping: the run's `keras.callbacks.EarlyStopping`
            (`restore_best_weights=True`).
        steps_per_epoch: int. Batches per epoch.
    """

    def __init__(self, run, model, early_stopping, steps_per_epoch):
        self.run, self.model, self.early_stopping, self.steps = run, model, early_stopping, steps_per_epoch
        state = run.resume.state if run.resume else {}
        self.resumed_from = run.resume.path if run.resume else None
        self.initial_epoch = self.epochs_done = state.get("epoch", 0)
        self.batches_done = state.get("batches", 0)
        self.seconds_before = self.seconds = state.get("seconds", 0.0)
        self._state = state
        self._started = None

    def final_epoch(self, epochs):
        """The epoch `fit` runs up to: `epochs`, unless the resumed run had stopped early (or ran more)."""
        stopped = self._state.get("early_stopping", {}).get("stopped_epoch", 0) > 0 and not self.run.continuing
        return self.initial_epoch if stopped else max(epochs, self.initial_epoch)

    def callback(self):
        import keras

        return keras.callbacks.LambdaCallback(
            on_train_begin=lambda logs: self._restore(), on_epoch_end=self._save,
            on_train_end=lambda logs: prune(self.run.backup_dir, keep=1),
        )

    # -- restoring -------------------------------------------------------------
    def _restore(self):
        self._started = time.time()
        if not self._state:
            return
        model, stopper, saved = self.model, self.early_stopping, self._state["early_stopping"]
        try:
            if model.optimizer is not None and not model.optimizer.built:
                model.optimizer.build(model.trainable_variables)  # its slots must exist to be loaded
            lora = lora_variables(model)
            if [v.path for v in lora] != self._state.get("lora", []):
                raise ValueError("its LoRA weights are not this model's")
            raw = {}
            if lora:
                with np.load(os.path.join(self.resumed_from, LORA)) as arrays:
                    raw = dict(arrays)
            if saved["has_best_weights"]:
                model.load_weights(os.path.join(self.resumed_from, BEST))
                _assign(lora, raw, "best")
                stopper.best_weights = model.get_weights()
            model.load_weights(os.path.join(self.resumed_from, WEIGHTS))
            _assign(lora, raw, "weights")
            variables = seed_variables(model)
            if [v.path for v in variables] != [path for path, _ in self._state["seeds"]]:
                raise ValueError("its random seed states are not this model's")
            for variable, (_, value) in zip(variables, self._state["seeds"]):
                variable.assign(np.asarray(value, variable.dtype).reshape(variable.shape))
        except Exception as error:  # noqa: BLE001 -- any mismatch: say which backup and why
            raise ValueError(
                f"The backup {self.resumed_from} does not fit the model this command builds ({error}). Flags "
                f"that change the model cannot change when a run resumes; --overwrite starts it again."
            ) from None
        stopper.wait, stopper.best, stopper.best_epoch = saved["wait"], saved["best"], saved["best_epoch"]
        stopper.stopped_epoch = 0 if self.run.continuing else saved["stopped_epoch"]

    # -- saving ----------------------------------------------------------------
    def _save(self, epoch, logs):
        self.epochs_done, self.batches_done = epoch + 1, self.batches_done + self.steps
        self.seconds = self.seconds_before + time.time() - self._started
        improved = self.early_stopping.best_epoch == epoch and self.early_stopping.best_weights is not None
        writing, size = f"the backup of epoch {epoch + 1}", self._estimated_bytes()
        written, free = [], disk_space.free_bytes(self.run.backup_dir)
        try:
            self.run.check_room(writing, self.run.backup_dir, size * (2 if improved else 1), size)
            if improved:
                self._write_best(written)
            self._write_generation(written)
        except BaseException as error:
            for path in written:
                _remove(path)
            full = self.run.out_of_space(error, writing, self.run.backup_dir, size, free)
            if full is None:
                raise
            raise full from None

    def _write_best(self, written):
        path = self.run.best_weights_path
        partial = os.path.join(os.path.dirname(path), ".partial-" + BEST)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        written.append(partial)
        with disk_space.hdf5_write():
            self.model.save_weights(partial)
        _sync(partial)
        os.replace(partial, path)
        written.remove(partial)

    def _write_generation(self, written):
        backup_dir, epoch = self.run.backup_dir, self.epochs_done
        partial = os.path.join(backup_dir, f".epoch-{epoch:04d}.partial")
        shutil.rmtree(partial, ignore_errors=True)
        written.append(partial)
        os.makedirs(partial)
        with disk_space.hdf5_write():
            self.model.save_weights(os.path.join(partial, WEIGHTS))
        files = [WEIGHTS]
        best = self.run.best_weights_path
        if self.early_stopping.best_weights is not None and os.path.exists(best):
            try:
                os.link(best, os.path.join(partial, BEST))
            except OSError:  # a file system without hard links
                shutil.copyfile(best, os.path.join(partial, BEST))
            files.append(BEST)
        lora = lora_variables(self.model)
        if lora:
            self._write_lora(lora, os.path.join(partial, LORA))
            files.append(LORA)
        stopper = self.early_stopping
        state = {
            "format_version": FORMAT_VERSION,
            "epoch": epoch,
            "steps_per_epoch": self.steps,
            "batches": self.batches_done,
            "seconds": round(self.seconds, 3),
            "early_stopping": {
                "wait": stopper.wait, "best": None if stopper.best is None else float(stopper.best),
                "best_epoch": stopper.best_epoch, "stopped_epoch": stopper.stopped_epoch,
                "has_best_weights": BEST in files,
            },
            "seeds": [[v.path, [int(x) for x in v.numpy().ravel()]] for v in seed_variables(self.model)],
            "lora": [v.path for v in lora],
            "files": {name: sha256(os.path.join(partial, name)) for name in files},
        }
        with open(os.path.join(partial, STATE), "w", encoding="utf-8") as f:
            json.dump(state, f, indent=1)
        for name in (*files, STATE):
            _sync(os.path.join(partial, name))
        with common.interrupts_deferred():  # the backup in place and Ctrl-C's words saying so
            self.run.commit(epoch)  # config.json and run.json of the run as of this epoch
            final = generation_path(backup_dir, epoch)
            if os.path.exists(final):  # a damaged generation of the same epoch: it goes
                os.rename(final, os.path.join(backup_dir, f".epoch-{epoch:04d}.replaced"))
            os.rename(partial, final)
            written.remove(partial)
            self.run.on_interrupt_during_training(epoch)
        _sync(backup_dir)
        prune(backup_dir, keep=2)

    def _write_lora(self, lora, path):
        """`lora.npz`: the LoRA layers' weights now (`weights_<i>`) and at the best epoch (`best_<i>`)."""
        arrays = {f"weights_{i}": np.asarray(v.numpy()) for i, v in enumerate(lora)}
        best = self.early_stopping.best_weights
        if best is not None:  # model.get_weights() of the best epoch, in model.weights' order
            position = {id(v): i for i, v in enumerate(self.model.weights)}
            arrays.update({f"best_{i}": best[position[id(v)]] for i, v in enumerate(lora)})
        with open(path, "wb") as f:
            np.savez(f, **arrays)

    def _estimated_bytes(self):
        """About the size of a weights file (the model's and the optimizer's variables) and of `lora.npz`."""
        variables = list(self.model.weights) + list(getattr(self.model.optimizer, "variables", []))
        variables += 2 * lora_variables(self.model)
        total = 0
        for v in variables:
            size = 1
            for dim in v.shape:
                size *= int(dim)
            total += size * _itemsize(v.dtype)
        return int(total * 1.02) + 64 * 1024


def _assign(variables, arrays, prefix):
    """Gives `variables` the values `lora.npz` holds for them under `prefix` (`weights` or `best`)."""
    for i, variable in enumerate(variables):
        key = f"{prefix}_{i}"
        if key not in arrays:
            raise ValueError(f"its {LORA} holds no {key}")
        variable.assign(arrays[key])


def _remove(path):
    if os.path.isdir(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.exists(path):
        os.remove(path)


def _itemsize(dtype):
    try:
        return np.dtype(str(dtype).replace("bfloat16", "float16")).itemsize
    except TypeError:
        return 4
