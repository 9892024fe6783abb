"""Pictures of what a trained task object does: attention maps and a confusion matrix.

Drawn with matplotlib's object API (`matplotlib.figure.Figure`), so
importing this package neither picks a display backend nor opens windows;
every function writes a PNG file. The recipes draw their plots with these.
"""

from zoo.plots.image_plots import class_token_attention, plot_attention_maps, plot_confusion_matrix
from zoo.plots.translation_plots import plot_cross_attention

__all__ = ["class_token_attention", "plot_attention_maps", "plot_confusion_matrix", "plot_cross_attention"]
