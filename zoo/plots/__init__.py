"""Pictures of what trained models and task objects do: attention maps,
attention rollout over images, cross attention, a confusion matrix.

Drawn with matplotlib's object API (`matplotlib.figure.Figure`), so
importing this package neither picks a display backend nor opens windows;
every function writes a PNG file. Above `zoo.models` (it draws their
attention), beside `zoo.tasks` (it takes a `zoo.ImageClassifier` without
importing it), below `recipes/`, which draw their plots with these.
"""

from zoo.plots.image_plots import class_token_attention, plot_attention_maps, plot_confusion_matrix
from zoo.plots.rollout_overlay import pick_correct_and_wrong, plot_rollout, plot_rollout_grid
from zoo.plots.translation_plots import plot_cross_attention

__all__ = [
    "class_token_attention",
    "pick_correct_and_wrong",
    "plot_attention_maps",
    "plot_confusion_matrix",
    "plot_cross_attention",
    "plot_rollout",
    "plot_rollout_grid",
]
