"""The trained model of a run: its task folder `<output>/model`, or an export of it.

`train` saves the run's task object (`zoo.Translator`,
`zoo.ImageClassifier`) as `<output>/model` (`save_task`); `evaluate` and
`export` read it (`load_task`), and the serving commands (`translate`,
`classify`) take it or an export (`task_or_export`).
"""

import os

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


def has_task(output):
    """Whether `output` holds a trained model (`<output>/model/`, or an older run's `model.keras`)."""
    return os.path.isdir(task_folder(output)) or os.path.exists(os.path.join(output, "model.keras"))


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


def task_or_export(path, task_example, export_example, serving_input):
    """What `translate --model` / `classify --model` was given: `("task", path)` or `("export", version)`.

    A task folder holds `task.json` (or is a run folder written before task
    folders, with `model.keras`); an export is a SavedModel version or the
    directory holding versions (its highest is used, as TF Serving does),
    whose `serving_default` takes `serving_input` (an export of the other
    task is named as such, before TensorFlow would fail binding its inputs).
    """
    if any(os.path.isfile(os.path.join(path, name)) for name in ("task.json", "model.keras")):
        return "task", path
    if os.path.isfile(os.path.join(task_folder(path), "task.json")):
        raise FileNotFoundError(
            f"{path} is a recipe's run folder. Pass its task folder {task_folder(path)} or an export "
            f"directory under {os.path.join(path, 'export')}."
        )
    try:
        version = saved_model_version(path, export_example)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"No task folder or SavedModel at {path!r}. Expected a task folder such as {task_example} or an "
            f"export directory such as {export_example}."
        ) from None
    names = serving_inputs(version)
    if serving_input not in names:
        inputs = ", ".join(sorted(names)) or "nothing"
        raise ValueError(
            f"{version} is an export of another task: its serving_default takes {inputs}, not {serving_input}. "
            f"Expected an export such as {export_example}."
        )
    return "export", version


def serving_inputs(version):
    """The input names of a SavedModel's `serving_default`, read from `saved_model.pb` without loading it."""
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(version, "saved_model.pb"), "rb") as f:
        proto.ParseFromString(f.read())
    signatures = [graph.signature_def["serving_default"] for graph in proto.meta_graphs
                  if "serving_default" in graph.signature_def]
    return set(signatures[0].inputs) if signatures else set()


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
