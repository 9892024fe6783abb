import numpy as np
import pytest

from zoo.layers import size_pair


def test_ints_and_pairs():
    assert size_pair(7, "x") == (7, 7)
    assert size_pair([3, 5], "x") == (3, 5) and size_pair((3, 5), "x") == (3, 5)


@pytest.mark.parametrize("value", [0, -2, (4,), (4, 4, 4), (4, 0), (4.0, 4), True, (True, 2), "16", None, np.int64(4)])
def test_anything_else_is_named(value):
    with pytest.raises(ValueError, match=f"image_size must be a positive int or a pair of positive ints. Received: image_size="):
        size_pair(value, "image_size")
