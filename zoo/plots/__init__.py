"""Pictures of what the models do (matplotlib): attention rollout over images.

Above `zoo.models` (it draws their attention), beside `zoo.tasks` (it takes
a `zoo.ImageClassifier` without importing it), below `recipes/`.
"""

from zoo.plots.rollout_overlay import pick_correct_and_wrong, plot_rollout, plot_rollout_grid

__all__ = ["pick_correct_and_wrong", "plot_rollout", "plot_rollout_grid"]
