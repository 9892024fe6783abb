"""Glue shared by the recipes: the command line and the run's config.

Command line: every field of a recipe's config dataclass is a flag whose
help, choices and default come from `option(...)` (booleans are
`--name/--no-name` switches); a run's config is `<output>/config.json`
updated with the flags given (`recipes.commands.run_command` says when
the saved one is reused). `command_line` wraps every command: output is
line-buffered (a piped log shows each line as it is printed), TensorFlow's
C++ start-up notices are hidden (`import_tensorflow`), an error is one
line on stderr with exit status 1, and Ctrl-C says what was kept and how
to go on (`on_interrupt`) with exit status 130; `--verbose` shows the
traceback and TensorFlow's own logs.

The run folder and what `train` does with it: `recipes.run_folder`; the
trained model in it: `recipes.trained_model`; training: `recipes.training`.

Hidden start-up notices are written here because TensorFlow does not
offer it: TF 2.21 prints its notices before any log level applies.
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


def read_json_object(path, what, remedy=None):
    """The JSON object in the file at `path`: a run's saved config or state.

    A file that is not valid JSON (UTF-8) or holds no JSON object raises a
    ValueError that names it, says it is not `what` and why, then `remedy`
    (what to do about it) where given. The recipes' counterpart of
    `zoo.files.read_json`, which they cannot import this early: `import zoo`
    imports Keras, which they put off until the flags have been read.
    """
    ending = f"; {remedy}" if remedy else ""
    try:
        with open(path, encoding="utf-8") as f:
            value = json.load(f)
    except ValueError as error:  # json.JSONDecodeError, UnicodeDecodeError
        raise ValueError(f"{path} is not {what}: {error}{ending}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{path} is not {what}: it holds a JSON {type(value).__name__}, not an object{ending}")
    return value


def given_flags(args, config_class):
    """The config fields given on the command line, by name."""
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(config_class) if hasattr(args, f.name)}


def config_from_args(args, config_class, saved_path):
    """The saved config at `saved_path` (if there is one; None: not reused), updated with the flags given.

    The output is always the run's directory (`output_directory`): a saved
    file's own `output` never moves a run elsewhere.
    """
    known = {f.name for f in dataclasses.fields(config_class)}
    given = given_flags(args, config_class)
    saved = {}
    if saved_path is not None and os.path.exists(saved_path):
        saved = {k: v for k, v in read_json_object(saved_path, "a saved config").items() if k in known}
    config = config_class(**{**saved, **given, "output": output_directory(args, config_class)})
    check_config(config)
    return config


class _Parser(argparse.ArgumentParser):
    """Flag errors as one line (argparse's default prints the whole usage first)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (`{self.prog} --help` lists the flags)\n")


def _add_verbose(parser):
    parser.add_argument("--verbose", action="store_true",
                        help="on errors, show the traceback; show TensorFlow's start-up logs")


TRAIN_RULES = (
    "On an --output that holds a run: an interrupted run resumes from its last finished epoch (the same "
    "weights as without the interruption, bit for bit on a CPU with op determinism); a run interrupted "
    "after training finishes its evaluate and export without training again; a finished run is left as it "
    "is (exit status 1) unless --epochs is above its own (training continues from its last epoch) or "
    "--overwrite is given. train exports only a model whose validation loss is lower than that of every "
    "version already in <output>/export/."
)
DESCRIPTIONS = {
    "train": "Train, then evaluate and export.",
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
    for name in ("train", "evaluate", "export"):
        when = "the run is resumed, continued or finished" if name == "train" else "the run exists"
        saved = f"Flags not given take their value from <output>/config.json when {when}, else the defaults shown."
        rules = f" {TRAIN_RULES}" if name == "train" else ""
        command = add_command(sub, name, f"{descriptions[name]}{rules} {saved}")
        add_config_flags(command, config_class)
        if name == "train":
            command.add_argument(
                "--overwrite", action="store_true",
                help="train a new run in place of the one in --output: its files are set aside, deleted once the "
                     "new run finishes an epoch and put back if it stops before (export/ is kept)")
    return parser, sub


def add_command(subparsers, name, description):
    """A subcommand whose `--help` starts with `description` and which takes `--verbose`."""
    command = subparsers.add_parser(name, help=description.split(". ")[0].rstrip("."), description=description)
    _add_verbose(command)
    return command


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


_INTERRUPTED = ["interrupted"]
_CTRL_C = {"received": False}  # set by `command_line`'s SIGINT handler


def on_interrupt(message):
    """What Ctrl-C (KeyboardInterrupt) says from now on, under `command_line`; returns what it said before."""
    previous, _INTERRUPTED[0] = _INTERRUPTED[0], message
    return previous


def _ctrl_c(signum, frame):
    _CTRL_C["received"] = True
    raise KeyboardInterrupt


def raise_if_interrupted():
    """Raises the KeyboardInterrupt of a Ctrl-C that Python swallowed, if any.

    Python drops an exception raised in a `__del__` method or a garbage
    collection callback (it prints "Exception ignored in ..."), and the
    SIGINT handler's KeyboardInterrupt lands there when the signal arrives
    while one runs; TensorFlow and JAX run many (about 1 Ctrl-C in 12
    during evaluate was lost so). `command_line`'s handler also records
    the Ctrl-C, and the run checks here at the end of each phase and epoch.
    """
    if _CTRL_C["received"]:
        raise KeyboardInterrupt


@contextlib.contextmanager
def interrupts_deferred():
    """Ctrl-C during the block is raised at its end: for a change of state and the words that describe it.

    Outside the main thread (where Python runs signal handlers) the block
    runs as it is.
    """
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received = []
    previous = signal.signal(signal.SIGINT, lambda *_: received.append(True))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if received:
        raise KeyboardInterrupt
    raise_if_interrupted()


@contextlib.contextmanager
def command_line(verbose=False):
    """Runs a recipe command: line-buffered output, one-line errors with exit status 1.

    Ctrl-C ends it with exit status 130 and `on_interrupt`'s words, even
    when Python swallowed its KeyboardInterrupt before the command ended
    (`raise_if_interrupted`). With `verbose`, exceptions propagate with
    their traceback.
    """
    import signal
    import threading

    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(line_buffering=True)
    handles = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, _ctrl_c) if handles else None
    _CTRL_C["received"] = False
    try:
        yield
        raise_if_interrupted()
    except KeyboardInterrupt:
        if verbose:
            raise
        print(_INTERRUPTED[0], file=sys.stderr)
        raise SystemExit(130) from None
    except Exception as error:  # noqa: BLE001 -- the one place errors become a message
        if verbose:
            raise
        print(f"error: {_one_line(error)} (--verbose shows the traceback)", file=sys.stderr)
        if getattr(error, "exit_at_once", False):  # exit handlers would crash (recipes.disk_space.hdf5_write)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(1)
        raise SystemExit(1) from None
    finally:
        if handles:
            signal.signal(signal.SIGINT, previous)
            _CTRL_C["received"] = False


# -- flags both recipes take ------------------------------------------------

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
