import numpy as np
import pytest
from keras import ops

from zoo.schedules import InverseSqrtSchedule


def test_matches_the_paper_formula():
    schedule = InverseSqrtSchedule(d_model=128, warmup_steps=100, scale=2.0)
    for step in (1, 50, 100, 101, 1000):
        expected = 2.0 * 128**-0.5 * min(step**-0.5, step * 100**-1.5)
        assert float(ops.convert_to_numpy(schedule(step))) == pytest.approx(expected, rel=1e-5)
    values = [float(ops.convert_to_numpy(schedule(s))) for s in range(1, 300)]
    assert int(np.argmax(values)) + 1 == 100  # peak at the end of warm-up


def test_config_round_trip_and_errors():
    schedule = InverseSqrtSchedule(64, 10)
    assert InverseSqrtSchedule(**schedule.get_config()).get_config() == schedule.get_config()
    with pytest.raises(ValueError, match="warmup_steps=0"):
        InverseSqrtSchedule(64, 0)
