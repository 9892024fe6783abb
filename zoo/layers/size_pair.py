"""`size_pair`: an image, patch or grid size as `(height, width)`.

One helper for every package that takes such sizes (the patch layers, the
Vision Transformer, image preprocessing, the checkpoint converters), so they
accept and refuse the same values with the same words.
"""


def size_pair(value, name):
    """An int or a pair of ints as a tuple of two positive ints.

    Args:
        value: int or sequence of 2 ints. `8` means `(8, 8)`.
        name: str. The argument's name, for the error message.

    Returns:
        tuple `(height, width)`.

    Raises:
        ValueError: naming `name` and the value received, if `value` is not
            a positive int or a pair of positive ints (bools are refused).

    Example:
    >>> size_pair(16, "patch_size")
    (16, 16)
    >>> size_pair([24, 32], "image_size")
    (24, 32)
    """
    def positive(v):
        return isinstance(v, int) and not isinstance(v, bool) and v > 0

    try:
        pair = (value, value) if isinstance(value, int) else tuple(value)
    except TypeError:
        pair = ()
    if len(pair) != 2 or not all(positive(v) for v in pair):
        raise ValueError(
            f"{name} must be a positive int or a pair of positive ints. Received: {name}={value!r}"
        )
    return pair
