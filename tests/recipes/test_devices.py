"""The recipes' --distribute and --mesh flags on the TensorFlow backend: a name or mesh the backend
cannot run is a one-line error before the run writes anything. (JAX runs: tests/recipes/test_recipes_on_jax.py.)"""

import pytest

from recipes import devices, image_classification, translation


@pytest.mark.parametrize("recipe", [translation, image_classification])
@pytest.mark.parametrize(
    "flags, message",
    [
        (["--distribute", "data-parallel"],
         "--distribute data-parallel does not exist on the tensorflow backend; its choices are none, mirrored, "
         "multi-worker (data-parallel runs with KERAS_BACKEND=jax)."),
        (["--distribute", "mirrored", "--mesh", "2x4"],
         "--mesh goes with --distribute model-parallel. Received: --distribute mirrored --mesh 2x4"),
    ],
)
def test_what_the_backend_cannot_run_is_one_line_and_writes_nothing(recipe, flags, message, tmp_path, capsys):
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as exit_info:
        recipe.main(["train", "--output", str(out), *flags])
    assert exit_info.value.code == 1
    assert capsys.readouterr().err == f"error: {message} (--verbose shows the traceback)\n"
    assert not out.exists()


def test_an_unknown_name_is_a_flag_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        translation.main(["train", "--output", str(tmp_path), "--distribute", "tpu-pod"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'tpu-pod'" in err and "mirrored" in err and "data-parallel" in err


def test_a_cluster_needs_jax_and_a_keras_distribution(monkeypatch):
    monkeypatch.setenv("KERAS_DISTRIBUTION_NUM_PROCESSES", "2")
    with pytest.raises(ValueError, match="KERAS_DISTRIBUTION_NUM_PROCESSES describe a cluster of processes, which "
                                         "keras.distribution joins on the jax backend .* Received: --distribute "
                                         "mirrored on the tensorflow backend"):
        devices.join_cluster("mirrored")
    monkeypatch.delenv("KERAS_DISTRIBUTION_NUM_PROCESSES")
    assert devices.join_cluster("mirrored") == (0, 1)
