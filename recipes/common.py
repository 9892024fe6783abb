"""Glue shared by the recipes: the command line, the run's config, training callbacks.

Command line: every field of a recipe's config dataclass is a flag whose
help, choices and default come from `option(...)` (booleans are
`--name/--no-name` switches); a run's config is `<output>/config.json`
updated with the flags given. `command_line` wraps every command: output is
line-buffered (a piped log shows each line as it is printed), TensorFlow's
C++ start-up notices are hidden (`import_tensorflow`), and an error is one
line on stderr with exit status 1; `--verbose` shows the traceback and
TensorFlow's own logs.

The trained model: `train` saves the run's task object (`zoo.Translator`,
`zoo.ImageClassifier`) as `<output>/model` (`save_task`); `evaluate` and
`export` read it (`load_task`), and the serving commands take it or an
export (`task_or_export`).

Training: `seed_everything` (Keras seeds plus TensorFlow op determinism),
`training_callbacks` (Keras' `BackupAndRestore` for resuming, the best
epoch's weights, early stopping, TensorBoard) and `training_summary`, the
line that says why training stopped and which epoch's weights were kept.
Hidden start-up notices and the summary line are written here because
neither TensorFlow nor Keras offers them: TF 2.21 prints its notices
before any log level applies, and Keras' `EarlyStopping(verbose=1)` says
when training stopped, not why nor where the kept weights are.
"""

import argparse
import contextlib
import dataclasses
import importlib.util
import json
import os
import re
import runpy
import sys
import tempfile
import types
import typing
import warnings

from recipes import devices

# -- flags <-> config -----------------------------------------------------


def option(default, help, choices=None, minimum=None, parse=None):
    """A config field with its `--help` text, allowed values, smallest value and flag parser.

    `choices` may be a callable returning them (evaluated when the parser is
    built); `parse` replaces the field type's own conversion of the flag's
    text (e.g. `data_spec`).
    """
    metadata = {"help": help, "choices": choices, "minimum": minimum, "parse": parse}
    return dataclasses.field(default=default, metadata=metadata)


def preset_names(module):
    """Preset names in `zoo/models/<module>.py`, read without importing Keras.

    The presets files hold plain dicts, so `--help` and flag errors answer at
    once instead of after TensorFlow's import.
    """
    package = os.path.dirname(importlib.util.find_spec("zoo").origin)
    namespace = runpy.run_path(os.path.join(package, "models", module + ".py"))
    (presets,) = [value for name, value in namespace.items() if name.endswith("_PRESETS")]
    return tuple(presets)


def data_spec(*forms):
    """An argparse type accepting `builtin` or `<kind>:<value>` for the given forms."""
    kinds = [form.split(":")[0] + ":" for form in forms if ":" in form]

    def parse(value):
        if value in forms or any(value.startswith(kind) and len(value) > len(kind) for kind in kinds):
            return value
        raise argparse.ArgumentTypeError(f"expected one of {', '.join(forms)}; received {value!r}")

    return parse


def _base_type(field_type):
    """`int | None` -> (int, True); `str` -> (str, False)."""
    args = [a for a in typing.get_args(field_type) if a is not type(None)]
    if isinstance(field_type, types.UnionType) or typing.get_origin(field_type) is typing.Union:
        return args[0], True
    return field_type, False


def _flag_type(field):
    base, optional = _base_type(field.type)
    minimum = field.metadata.get("minimum")
    convert = field.metadata.get("parse") or base

    def parse(value):
        if optional and value.lower() == "none":
            return None
        try:
            parsed = convert(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {base.__name__}, received {value!r}") from None
        if minimum is not None and parsed < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, received {value!r}")
        return parsed

    parse.__name__ = base.__name__  # argparse names the type in its messages
    return base, parse


def _help(field):
    text = field.metadata.get("help", "")
    base, optional = _base_type(field.type)
    default = field.default
    if base is bool:
        return f"{text} (default: {'on' if default else 'off'})"
    return f"{text} (default: {default}{'; none resets it' if optional else ''})"


def add_config_flags(parser, config_class):
    """One `--flag` per config field; flags not given are left out of the namespace.

    Leaving them out (argparse.SUPPRESS) is what lets a saved config fill
    them in (`config_from_args`).
    """
    for field in dataclasses.fields(config_class):
        flag = "--" + field.name.replace("_", "-")
        kwargs = dict(dest=field.name, default=argparse.SUPPRESS, help=_help(field))
        base, parse = _flag_type(field)
        if base is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, **kwargs)
            continue
        choices = field.metadata.get("choices")
        choices = choices() if callable(choices) else choices
        if choices:
            kwargs["choices"] = tuple(choices)
            kwargs["metavar"] = "{" + ",".join(choices) + "}"
        parser.add_argument(flag, type=parse, **kwargs)


def check_config(config):
    """Raises ValueError for a field below its minimum or outside its choices (e.g. from a saved file)."""
    for field in dataclasses.fields(config):
        value, meta = getattr(config, field.name), field.metadata
        flag = "--" + field.name.replace("_", "-")
        choices = meta.get("choices")
        choices = choices() if callable(choices) else choices
        if choices and value not in choices:
            raise ValueError(f"{flag} must be one of {', '.join(choices)}. Received: {value!r}")
        if value is not None and meta.get("minimum") is not None and value < meta["minimum"]:
            raise ValueError(f"{flag} must be at least {meta['minimum']}. Received: {value!r}")


def output_directory(args, config_class):
    """The run's directory: `--output` when given, else the config class's default."""
    return getattr(args, "output", config_class.output)


def config_from_args(args, config_class, saved_path):
    """The saved config of an existing run (if any), updated with the flags given.

    The output is always the run's directory (`output_directory`): a saved
    file's own `output` never moves a run elsewhere.
    """
    known = {f.name for f in dataclasses.fields(config_class)}
    given = {name: getattr(args, name) for name in known if hasattr(args, name)}
    saved = {}
    if os.path.exists(saved_path):
        with open(saved_path) as f:
            try:
                saved = {k: v for k, v in json.load(f).items() if k in known}
            except json.JSONDecodeError as e:
                raise ValueError(f"{saved_path} is not a saved config: {e}") from None
    config = config_class(**{**saved, **given, "output": output_directory(args, config_class)})
    check_config(config)
    return config


def save_config(config, path):
    with open(path, "w") as f:
        json.dump(dataclasses.asdict(config), f, indent=2)


class _Parser(argparse.ArgumentParser):
    """Flag errors as one line (argparse's default prints the whole usage first)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (`{self.prog} --help` lists the flags)\n")


def _add_verbose(parser):
    parser.add_argument("--verbose", action="store_true",
                        help="on errors, show the traceback; show TensorFlow's start-up logs")


DESCRIPTIONS = {
    "train": "Train, then evaluate and export (resumes an interrupted run).",
    "evaluate": "Score a trained run on the test split and draw its plots.",
    "export": "Write the next TF Serving version of a trained run under <output>/export/.",
}


def recipe_parser(prog, doc, config_class, descriptions=None):
    """An argparse parser with `train`, `evaluate` and `export` subcommands taking config flags.

    `descriptions` maps each of them to its description (`DESCRIPTIONS`
    by default). Returns `(parser, subparsers)`; a recipe adds its serving
    command with `add_command`.
    """
    descriptions = {**DESCRIPTIONS, **(descriptions or {})}
    parser = _Parser(
        prog=prog, description=doc.split("\n\n")[0], epilog=f"`{prog} COMMAND --help` describes each command."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    saved = (
        "Flags not given take their value from <output>/config.json when the run "
        "exists, else the defaults shown."
    )
    for name in ("train", "evaluate", "export"):
        command = add_command(sub, name, f"{descriptions[name]} {saved}")
        add_config_flags(command, config_class)
    return parser, sub


def add_command(subparsers, name, description):
    """A subcommand whose `--help` starts with `description` and which takes `--verbose`."""
    command = subparsers.add_parser(name, help=description.split(". ")[0].rstrip("."), description=description)
    _add_verbose(command)
    return command


def run_config_command(args, config_class, config_file, commands):
    """Builds the run's config (saved one + flags) and calls `commands[args.command](config)`."""
    saved_path = os.path.join(output_directory(args, config_class), config_file)
    config = config_from_args(args, config_class, saved_path)
    origin = f"config from {saved_path} and flags" if os.path.exists(saved_path) else (
        "new run" if args.command == "train" else "no saved config")
    print(f"{args.command}: {config.output} ({origin})")
    import_tensorflow(getattr(args, "verbose", False))
    return commands[args.command](config)


# -- the command line's behaviour -----------------------------------------

# TensorFlow's C++ notices printed while it loads, before any log level
# applies: oneDNN, "Could not find cuda drivers", CPU features, absl's banner.
_STARTUP_NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|[IW]\d{4} [\d:. ]+\d+ \S+:\d+\] .*"
    r"|To enable the following instructions: .*)$"
)


@contextlib.contextmanager
def _captured_stderr(sink):
    """Sends file descriptor 2 (C++ writes there too) to a temporary file, appended to `sink` after."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            sink.append(captured.read().decode("utf-8", "replace"))


def import_tensorflow(verbose=False):
    """Imports TensorFlow, Keras and tensorflow-text with TensorFlow's start-up notices hidden.

    TF_CPP_MIN_LOG_LEVEL defaults to 3 (unless set or `verbose`): on a
    machine without a GPU, TensorFlow logs `failed call to cuInit` as an
    error. What it prints that is not a start-up notice is passed on. On
    the JAX and PyTorch backends TensorFlow then sees no GPU
    (`devices.keep_tensorflow_off_gpus`).
    """
    if "tensorflow" not in sys.modules and not verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        text = []
        try:
            with _captured_stderr(text):
                import keras  # noqa: F401
                import tensorflow as tf

                tf.config.list_physical_devices()  # the CUDA probe logs here
                if importlib.util.find_spec("tensorflow_text"):
                    import tensorflow_text  # noqa: F401
        finally:
            for line in "".join(text).splitlines(keepends=True):
                if not _STARTUP_NOISE.match(line.rstrip("\n")):
                    sys.stderr.write(line)
    devices.keep_tensorflow_off_gpus()


def _one_line(error):
    """An exception as one line: Keras' "Exception encountered when calling ..." frame removed."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error)).split("Arguments received by")[0]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith("Exception encountered when calling")]
    message = " ".join(lines) or type(error).__name__
    expected = isinstance(error, (ValueError, OSError, KeyError))
    return message if expected else f"{type(error).__name__}: {message}"


@contextlib.contextmanager
def command_line(verbose=False):
    """Runs a recipe command: line-buffered output, one-line errors with exit status 1.

    With `verbose`, exceptions propagate with their traceback.
    """
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(line_buffering=True)
    try:
        yield
    except KeyboardInterrupt:
        if verbose:
            raise
        print("interrupted (a killed `train` resumes from its last finished epoch when run again)", file=sys.stderr)
        raise SystemExit(130) from None
    except Exception as error:  # noqa: BLE001 -- the one place errors become a message
        if verbose:
            raise
        print(f"error: {_one_line(error)} (--verbose shows the traceback)", file=sys.stderr)
        raise SystemExit(1) from None


# -- training ---------------------------------------------------------------

DETERMINISM = ("auto", "on", "off")
# Weights of the export: float, or int8 (zoo.export.quantization), written
# as the sibling model `<name>_int8` so both can be served side by side.
QUANTIZE = ("none", "int8")
DETERMINISM_HELP = (
    "TensorFlow op determinism, for the same weights from the same command on the same machine; "
    "auto: on when no GPU is visible"
)


def quantize_help(name):
    """`--quantize`'s help for a recipe whose export is named `name`."""
    return f"export weights: none (float32) or int8 (weight-only, per channel; written as <output>/export/{name}_int8/)"


def quantize_mode(config):
    """`config.quantize` as the task objects' `export(quantize=...)` takes it: None or "int8"."""
    return None if config.quantize == "none" else config.quantize


def seed_everything(seed, determinism="auto"):
    """Seeds Python, NumPy, TensorFlow and Keras; with determinism, TensorFlow ops too.

    `auto` turns op determinism on when the training backend sees no GPU
    (`devices.has_gpu`): on CPU it costs little, and it makes tf.data's
    parallel augmentation reproducible. On GPUs it slows training and some
    ops have no deterministic kernel. Returns whether op determinism is on.
    """
    import keras
    import tensorflow as tf

    if determinism not in DETERMINISM:
        raise ValueError(f"determinism must be one of {DETERMINISM}. Received: {determinism!r}")
    keras.utils.set_random_seed(seed)
    on = determinism == "on" or (determinism == "auto" and not devices.has_gpu())
    if on:
        tf.config.experimental.enable_op_determinism()
    return on


def best_weights_path(output):
    return os.path.join(output, "checkpoints", "best.weights.h5")


def training_callbacks(output, patience):
    """Resume after interruption, the best epoch's weights, early stopping, TensorBoard.

    On disk: `<output>/backup/` holds the last finished epoch (weights and
    optimizer state) while training runs and is removed when it ends;
    `<output>/checkpoints/best.weights.h5` holds the epoch with the lowest
    validation loss. Nothing accumulates per epoch.
    """
    import keras

    return [
        keras.callbacks.BackupAndRestore(os.path.join(output, "backup")),
        keras.callbacks.ModelCheckpoint(best_weights_path(output), monitor="val_loss", save_best_only=True,
                                        save_weights_only=True),
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=True),
        keras.callbacks.TensorBoard(os.path.join(output, "logs")),
    ]


def training_summary(early_stopping, epochs_run, epochs, output):
    """Why training ended and which epoch's weights the model now holds, in one line.

    `early_stopping` is the `keras.callbacks.EarlyStopping` after `fit`;
    `epochs_run` the epoch indices `fit` ran (`history.epoch`), `epochs` the
    number asked for.
    """
    last = epochs_run[-1] + 1 if epochs_run else 0
    if early_stopping.stopped_epoch > 0:
        ended = (
            f"stopped early after epoch {early_stopping.stopped_epoch + 1} of {epochs}: validation loss "
            f"did not improve for {early_stopping.patience} epochs"
        )
    else:
        ended = f"ran {last} of {epochs} epochs"
    if early_stopping.best_weights is None:  # no validation loss was seen
        return f"Training {ended}; kept the last epoch's weights."
    return (
        f"Training {ended}; kept the weights of epoch {early_stopping.best_epoch + 1} "
        f"(lowest validation loss, {early_stopping.best:.4f}), also in {best_weights_path(output)}."
    )


def fit(model, train, validation, config, engine=None):
    """`model.fit` with the recipe callbacks; prints the time taken and `training_summary`.

    Under a `keras.distribution` `engine` (JAX), every batch is cut to a
    multiple of the pieces the engine splits it into (`zoo.distribution.even_batches`).
    """
    import time

    import keras

    from zoo import distribution

    shards = distribution.batch_shards(engine)
    if shards > 1:
        print(f"each batch is split {shards} ways: batches are cut to a multiple of {shards} examples")
    train, validation = (distribution.even_batches(data, shards) for data in (train, validation))
    callbacks = training_callbacks(config.output, config.patience)
    (early_stopping,) = [c for c in callbacks if isinstance(c, keras.callbacks.EarlyStopping)]
    started = time.time()
    with warnings.catch_warnings():
        # Keras warns at the end of every pass over a dataset of unknown
        # length (bucketed batches) that the input "ran out of data" and
        # suggests .repeat(); for these finite datasets that is the end of
        # an epoch, not a problem.
        warnings.filterwarnings("ignore", message="Your input ran out of data", category=UserWarning)
        history = model.fit(
            train.repeat() if config.steps_per_epoch else train,
            validation_data=validation,
            epochs=config.epochs,
            steps_per_epoch=config.steps_per_epoch,
            callbacks=callbacks,
            shuffle=False,  # the datasets shuffle themselves (seeded)
            verbose=progress_verbosity(),
        )
    print(f"training took {time.time() - started:.0f} s")
    print(training_summary(early_stopping, history.epoch, config.epochs, config.output))
    return history


def progress_verbosity():
    """Keras progress bars on a terminal; one line per epoch in logs and CI."""
    return 1 if sys.stdout.isatty() else 2


# -- the trained model: a task folder --------------------------------------

TASK_FOLDER = "model"


def task_folder(output):
    """`<output>/model`: where `train` saves the run's task object (`zoo.Translator`, `zoo.ImageClassifier`).

    A folder of its own, because saving replaces the whole folder and the
    run's directory also holds logs, checkpoints and the resume backup.
    """
    return os.path.join(output, TASK_FOLDER)


def save_task(task, output):
    """Saves `task` as `<output>/model/` (replacing an earlier one) and says where and how to load it."""
    folder, name = task_folder(output), type(task).__name__
    path = task.save(folder, overwrite=True)
    print(f"saved {name}: {folder} (zoo.{name}.load({folder!r}))")
    return path


def load_task(task_class, output, recipe):
    """The run's task object: `<output>/model/`, else a run folder written before task folders.

    Those older runs (`model.keras`, tokenizers or class names, and
    `config.json` in `<output>` itself) are read by `task_class.load`.
    """
    folder = task_folder(output)
    if os.path.isdir(folder):
        return task_class.load(folder)
    if os.path.exists(os.path.join(output, "model.keras")):
        return task_class.load(output)
    raise FileNotFoundError(
        f"No trained model at {folder}; run `python -m recipes.{recipe} train --output {output}` first."
    )


def task_or_export(path, task_example, export_example):
    """What `translate --model` / `classify --model` was given: `("task", path)` or `("export", version)`.

    A task folder holds `task.json` (or is a run folder written before task
    folders, with `model.keras`); an export is a SavedModel version or the
    directory holding versions (its highest is used, as TF Serving does).
    """
    if any(os.path.isfile(os.path.join(path, name)) for name in ("task.json", "model.keras")):
        return "task", path
    if os.path.isfile(os.path.join(task_folder(path), "task.json")):
        raise FileNotFoundError(
            f"{path} is a recipe's run folder. Pass its task folder {task_folder(path)} or an export "
            f"directory under {os.path.join(path, 'export')}."
        )
    try:
        return "export", saved_model_version(path, export_example)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"No task folder or SavedModel at {path!r}. Expected a task folder such as {task_example} or an "
            f"export directory such as {export_example}."
        ) from None


def saved_model_version(path, example):
    """The SavedModel directory to load: `path` itself, or its highest numbered version.

    TF Serving is given the model's base directory and serves the highest
    version; so does this. `example` shows the expected path in the error.
    """
    if os.path.isfile(os.path.join(path, "saved_model.pb")):
        return path
    versions = sorted(int(name) for name in os.listdir(path) if name.isdigit()) if os.path.isdir(path) else []
    if versions and os.path.isfile(os.path.join(path, str(versions[-1]), "saved_model.pb")):
        return os.path.join(path, str(versions[-1]))
    raise FileNotFoundError(f"No SavedModel at {path!r}. Expected an export directory such as {example}.")
