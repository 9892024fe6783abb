"""A recipe's run directory: what it holds, how far the run got, and what `train` does with it.

`<output>` holds `config.json` (the run's flags, written with the first
epoch's backup: a `train` that fails before an epoch finishes leaves none
that a later run would reuse), `run.json` (training's summary, the phases
done after it, the exports written and the validation loss of each),
`backup/epoch-NNNN/` (`recipes.run_backup`), `checkpoints/best.weights.h5`,
`logs/` (TensorBoard), `model/` (the trained task folder), `metrics.json`
and plots, and `export/<name>/<version>/`. Small files are written whole
(to a file beside, then renamed over). While `train` runs, `.train.pid`
names its process: a second `train` on the folder is refused.

What `train` does with an existing `--output` (`RunFolder.plan_train`,
decided before TensorFlow is imported):

- nothing of a run that finished an epoch: a new run;
- an interrupted run (a backup, training not finished): resume it from its
  last backup;
- a finished run whose evaluate or export did not finish: finish them,
  without training;
- a finished run and `--epochs` above its own: continue training it from its
  last epoch (its model, metrics and plots are replaced when that ends);
- a finished run with nothing left to do: change nothing, say so in one
  line, exit status 1;
- `--overwrite`: a new run in its place. The earlier run's files are set
  aside (`.earlier-run/`) and deleted once the new run has finished an
  epoch; a new run that fails or is interrupted before that puts them back.

`export/` is never removed: `train` writes a version only if its model's
validation loss is lower than that of every version already there (the
`export` command writes one whenever asked). Flags that matter only when a
run starts (such as a future `--init-from`) fit the first and last cases.
"""

import contextlib
import dataclasses
import os
import shutil

from recipes import common, disk_space, run_backup, trained_model
from recipes.set_aside import SetAside

RUN_FILE = "run.json"
NEW, RESUME, CONTINUE, FINISH = "new", "resume", "continue", "finish"
PHASES = ("evaluate", "export")
RUN_FILES = ("model", "backup", "checkpoints", "logs", "metrics.json", RUN_FILE)


def _changed(given, saved):
    """The flags given whose values differ from the saved config's, as `--name, --other` ('' if none)."""
    return ", ".join(sorted("--" + name.replace("_", "-") for name, value in given.items()
                            if name != "output" and name in saved and saved[name] != value))


def best_weights_path(output):
    return os.path.join(output, "checkpoints", "best.weights.h5")


class RunFolder:
    """A run directory and the plan of the command run on it.

    Args:
        output: str. The run directory (`--output`).
        recipe: str. The recipe's module name under `recipes` (for the commands it suggests).
        config_file: str. The config's file name. Defaults to `"config.json"`.
        artifacts: tuple of str. The recipe's other files and folders in the run directory
            (plots, tokenizers), which `--overwrite` sets aside.
    """

    def __init__(self, output, recipe, config_file="config.json", artifacts=()):
        self.output, self.recipe, self.config_file = output, recipe, config_file
        self.artifacts = tuple(dict.fromkeys((*RUN_FILES, config_file, *artifacts)))
        self.plan = self.resume = self.config = None
        self._aside = SetAside(self.output)
        self._set_aside = False
        self._starting = False  # a new or continued run whose first backup is still to come
        self._committed = None  # the last epoch whose backup is complete

    def path(self, *names):
        return os.path.join(self.output, *names)

    @property
    def backup_dir(self):
        return self.path("backup")

    @property
    def best_weights_path(self):
        return best_weights_path(self.output)

    @property
    def trains(self):
        return self.plan in (NEW, RESUME, CONTINUE)

    @property
    def continuing(self):
        return self.plan == CONTINUE

    @property
    def resuming(self):
        """Whether training picks up a backup (resumed or continued run): files of the run are reused."""
        return self.plan in (RESUME, CONTINUE)

    def _hint(self, command="train"):
        return f"`python -m recipes.{self.recipe} {command} --output {self.output}`"

    # -- what the folder holds -------------------------------------------------
    def state(self):
        """`run.json`, or what the files of a run from before it existed say (trained, evaluated, exported)."""
        path = self.path(RUN_FILE)
        if os.path.exists(path):
            state = common.read_json_object(path, "a run state", remedy="delete it or use --overwrite")
            return {"done": [], "exports": [], **state}
        if not (os.path.isfile(self.path("model", "task.json")) or os.path.isfile(self.path("model.keras"))):
            return {"done": [], "exports": []}
        done = ["train", *(["evaluate"] if os.path.exists(self.path("metrics.json")) else []),
                *(["export"] if self.export_versions() else [])]
        return {"done": done, "exports": []}

    def _write_state(self, state):
        os.makedirs(self.output, exist_ok=True)
        disk_space.write_json(self.path(RUN_FILE), state)

    def _saved_config(self):
        path = self.path(self.config_file)
        return common.read_json_object(path, "a saved config") if os.path.exists(path) else {}

    def export_versions(self):
        """Every export version directory under `<output>/export/`, relative to the run directory."""
        base, found = self.path("export"), []
        for name in sorted(os.listdir(base)) if os.path.isdir(base) else []:
            if not os.path.isdir(os.path.join(base, name)):
                continue
            versions = [v for v in os.listdir(os.path.join(base, name)) if v.isdigit()]
            found += [os.path.join("export", name, v) for v in sorted(versions, key=int)]
        return found

    # -- train's plan ----------------------------------------------------------
    def plan_train(self, given, overwrite=False):
        """Decides what `train` does here (module docstring); returns the words saying so.

        Args:
            given: dict. The config fields given as flags.
            overwrite: bool. `--overwrite`.

        Raises:
            FileExistsError: the folder holds a finished run with nothing left to do.
        """
        if overwrite:
            self.plan, self._set_aside = NEW, any(os.path.exists(self.path(name)) for name in self.artifacts)
            return "new run; --overwrite: the earlier run is set aside" if self._set_aside else "new run"
        state, saved = self.state(), self._saved_config()
        config_origin = f"config from {self.path(self.config_file)} and flags"
        if "train" in state["done"]:
            return self._plan_finished(state, saved, given, config_origin)
        if os.path.exists(os.path.join(self.backup_dir, "training_metadata.json")):
            raise FileExistsError(
                f"{self.backup_dir} holds a backup of Keras' BackupAndRestore, written by an earlier version of "
                f"the recipes, which this one does not resume; --overwrite starts the run again.")
        self.resume = run_backup.latest_generation(self.backup_dir)
        if self.resume is not None:
            self.plan = RESUME
            changed = _changed(given, saved)
            return f"resuming an interrupted run; {config_origin}" + (
                f"; changed from its {self.config_file}: {changed}" if changed else "")
        self.plan = NEW
        stale = os.path.exists(self.path(self.config_file))
        return f"new run; ignoring {self.path(self.config_file)}, left by a run that finished no epoch" if stale \
            else "new run"

    def _plan_finished(self, state, saved, given, config_origin):
        trained_epochs, epochs = saved.get("epochs"), given.get("epochs")
        last = run_backup.latest_generation(self.backup_dir)
        epochs_done = (state.get("training") or {}).get("epochs_done")
        can_continue = last is not None and last.epoch == epochs_done
        if epochs is not None and trained_epochs is not None and epochs > trained_epochs:
            if not can_continue:
                raise FileExistsError(
                    f"{self.output} holds a finished run without a backup of its last epoch to continue from "
                    f"(trained before runs kept one); --overwrite trains a new run in its place, or choose "
                    f"another --output.")
            self.plan, self.resume = CONTINUE, last
            return (f"continuing the finished run from epoch {last.epoch} to {epochs}; {config_origin}. Its model, "
                    f"metrics and plots are replaced when training ends")
        pending = [phase for phase in PHASES if phase not in state["done"]]
        if pending:
            self.plan = FINISH
            return f"trained earlier: finishing {' and '.join(pending)} without training; {config_origin}"
        raise FileExistsError(self._finished_message(state, saved, given, can_continue))

    def _finished_message(self, state, saved, given, can_continue):
        training = state.get("training") or {}
        what = "trained"
        if training.get("val_loss") is not None:
            what = (f"trained {training['epochs_done']} epochs, lowest validation loss {training['val_loss']:.4f} "
                    f"at epoch {training['best_epoch']}")
        if "evaluate" in state["done"] and os.path.exists(self.path("metrics.json")):
            what += f"; metrics in {self.path('metrics.json')}"
        versions = self.export_versions()
        if versions:
            what += f"; exported {self.path(versions[-1])}"
        more = f"; to train it more, --epochs above its {saved.get('epochs')}" if can_continue else ""
        differ = _changed(given, saved)
        differ = f" (flags that differ from its {self.config_file}: {differ})" if differ else ""
        return (f"{self.output} holds a finished run ({what}); nothing was changed{differ}. To train a new run in "
                f"its place: --overwrite (export/ is kept){more}; or choose another --output.")

    def prepare_training(self):
        """Before training: removes half-written backups (named) and, with --overwrite, sets the earlier run aside."""
        for path in run_backup.leftovers(self.backup_dir):
            print(f"removing {path}: a backup that was left half-written (interrupted, or out of space)")
            shutil.rmtree(path, ignore_errors=True)
        if self._set_aside:
            moved = self._aside.move(self.artifacts)
            print(f"--overwrite: set {', '.join(moved)} aside in {self._aside.path}: deleted once this run finishes "
                  f"an epoch, put back if it stops before (export/ stays)")
        if not self.trains:
            common.on_interrupt(self._phase_message(next(p for p in PHASES if p not in self.state()["done"])))
            return
        self._starting = self.plan in (NEW, CONTINUE)
        self._committed = self.resume.epoch if self.resume else None
        if self.plan == CONTINUE:
            common.on_interrupt(f"interrupted before the continued run finished an epoch: it is still the finished "
                                f"run of {self.resume.epoch} epochs; the same command continues it")
        elif self._committed is not None:
            self.on_interrupt_during_training(self._committed)
        elif self._set_aside:
            common.on_interrupt("interrupted before the new run finished an epoch; the same command starts it again")
        else:
            common.on_interrupt("interrupted before the first epoch finished: no backup was written; the same "
                                "command starts the run again")

    def on_interrupt_during_training(self, epochs_done):
        """What Ctrl-C says from now on: the backup of `epochs_done` epochs is complete."""
        self._committed = epochs_done
        common.on_interrupt(
            f"interrupted after the backup of epoch {epochs_done} (in {self.backup_dir}): {self._hint()} resumes "
            f"from it (the run's flags are saved in {self.path(self.config_file)})")

    def commit(self, epoch):
        """Called once the backup of `epoch` is complete, before it is renamed into place.

        Writes config.json. The first time, a new run also starts its run.json
        (keeping the records of earlier exports) and deletes the run that
        --overwrite set aside, and a continued run is no longer a finished one.
        """
        disk_space.write_json(self.path(self.config_file), dataclasses.asdict(self.config))
        if not self._starting:
            return
        earlier = RunFolder(self._aside.path, self.recipe) if self._aside.exists() else self
        self._write_state({"done": [], "exports": earlier.state()["exports"]})
        self._aside.discard()
        self._set_aside = self._starting = False

    def recover(self):
        """Puts back a run that an interrupted `--overwrite` set aside (a kill left it there)."""
        self._set_aside = self._aside.exists()
        self.put_back_earlier_run()

    def put_back_earlier_run(self):
        """Undoes --overwrite's setting aside, if the new run has not finished an epoch."""
        if self._set_aside and self._aside.put_back():
            print(f"the earlier run in {self.output} is back as it was (the new run had finished no epoch)")
        self._set_aside = False

    # -- after training ---------------------------------------------------------
    def record_training(self, **summary):
        """Records training's summary (epochs, seconds, best epoch, its validation loss) in run.json."""
        self._write_state({**self.state(), "training": summary})

    def save_task(self, task):
        """Saves the trained task folder (`trained_model.save_task`) and records that training is done."""
        message = (f"interrupted while saving the trained model: the backup of its last epoch is kept, and "
                   f"{self._hint()} saves it without training again")
        with self.phase("the trained model", message):
            path = trained_model.save_task(task, self.output)
        self._record({**self.state(), "done": ["train"]}, self._phase_message(PHASES[0]))
        return path

    def _record(self, state, message):
        """Writes run.json and what Ctrl-C says from now on, together."""
        with common.interrupts_deferred():
            self._write_state(state)
            common.on_interrupt(message)

    def _phase_message(self, name):
        """What Ctrl-C says from the end of training until phase `name` is recorded (None: all are)."""
        return {
            "evaluate": f"interrupted before evaluate finished: training is finished and the model saved in "
                        f"{self.path('model')}; {self._hint()} evaluates and exports it without training again",
            "export": f"interrupted before export finished: no version was written (a version is written whole or "
                      f"not at all); {self._hint()} exports without training again",
            None: "interrupted after the run finished",
        }[name]

    def train(self, train_task, evaluate, export):
        """`train`'s flow: `train_task()` (-> the saved task, its data) when the plan trains, then the phases left.

        `evaluate(task, data)` and `export(task)` are given None for what
        this process did not train (they load it). Returns the trained
        model, or None when no training was left.
        """
        task, data = train_task() if self.trains else (None, None)
        self.finish(evaluate=lambda: evaluate(task, data), export=lambda: export(task))
        return None if task is None else task.model

    def finish(self, **phases):
        """Runs `phases` (`evaluate=`, `export=`: functions of no arguments) not yet done, in order, recording each.

        The export is skipped (and says why) unless the model's validation
        loss is lower than that of every version already exported here;
        `export` returns the version's path.
        """
        for i, name in enumerate(PHASES):
            state = self.state()
            if name in state["done"]:
                continue
            if name == "export" and (reason := self.export_refusal(state)):
                print(f"not exported: {reason}")
            else:
                with self.phase(name, self._phase_message(name)):
                    result = phases[name]()
                if name == "export":
                    state = {**state, "exports": [*state["exports"], self._export_record(state, result)]}
            later = PHASES[i + 1] if i + 1 < len(PHASES) else None
            self._record({**state, "done": [*state["done"], name]}, self._phase_message(later))

    def export_refusal(self, state):
        """Why `train` must not write an export version now, or None."""
        loss = (state.get("training") or {}).get("val_loss")
        known = {record["path"]: record.get("val_loss") for record in state["exports"]}
        versions = self.export_versions()
        unknown = [v for v in versions if known.get(v) is None]
        hint = self._hint("export")
        if unknown:
            return (f"{self.path(unknown[-1])} was exported without a record of its validation loss, so this model "
                    f"cannot be compared with it; {hint} writes a new version anyway")
        if versions and (loss is None or loss >= min(known[v] for v in versions)):
            best = min(versions, key=lambda v: known[v])
            shown = "unknown" if loss is None else f"{loss:.4f}"
            return (f"this model's validation loss ({shown}) is not lower than that of {self.path(best)} "
                    f"({known[best]:.4f}); {hint} writes a new version anyway")
        return None

    def _export_record(self, state, path):
        """run.json's record of an export version written from this run: its path, the model's validation loss."""
        loss = (state.get("training") or {}).get("val_loss") if "train" in state["done"] else None
        return {"path": os.path.relpath(os.path.abspath(path), os.path.abspath(self.output)), "val_loss": loss}

    def run_phase_command(self, command, function):
        """`evaluate` / `export` run as commands: Ctrl-C and a full disk are reported, and the run records them."""
        message = {
            "evaluate": "interrupted: evaluate did not finish; metrics.json and the plots may be an earlier one's",
            "export": "interrupted: export did not finish and wrote no version",
        }[command]
        with self.phase(command, message):
            result = function()
        state = self.state()
        if command == "export":
            state = {**state, "exports": [*state["exports"], self._export_record(state, result)]}
        if "train" in state["done"] and command not in state["done"]:
            state = {**state, "done": [*state["done"], command]}
        self._record(state, "interrupted")
        return result

    @contextlib.contextmanager
    def phase(self, name, message):
        """Ctrl-C from the block on says `message`; a full disk in the block is one line naming the run folder."""
        common.on_interrupt(message)
        try:
            yield
            common.raise_if_interrupted()  # a Ctrl-C in the block that Python swallowed: the phase is not recorded
        except Exception as error:  # noqa: BLE001 -- only a full disk is translated
            model = self.path("model")
            size = sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(model) for f in files)
            full = self.out_of_space(error, name, self.output, size or None)
            if full is None:
                raise
            raise full from None

    def out_of_space(self, error, writing, folder, needed=None, free=None):
        """`disk_space.out_of_space`, saying what the run has kept and how to go on."""
        return disk_space.out_of_space(error, writing, folder, needed, self._after_no_room(writing), free)

    def check_room(self, writing, folder, needed, largest_file):
        """`disk_space.check_room`, saying what the run has kept and how to go on."""
        disk_space.check_room(writing, folder, needed, largest_file, self._after_no_room(writing))

    def _after_no_room(self, writing):
        if "backup" not in writing:
            return f"Once there is room, {self._hint()} finishes what is left without training again."
        if self._committed is None:
            return "No epoch's backup was written: the same command starts the run again once there is room."
        how = "the same command continues" if self._starting else f"{self._hint()} resumes"
        return f"The backup of epoch {self._committed} is intact: {how} from it once there is room."
