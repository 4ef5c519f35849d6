"""The training engine's phase plan: where a run, a resumed run and a
Hyperband trial start in a recipe's declared phases (no training here; the
example recipes in tests/test_example_*.py train through the engine)."""

import pytest

from dlrecipes.training.engine import plan

TWO = (2, 3)  # head 2 epochs, fine-tune 3 (transfer learning's shape)


@pytest.mark.parametrize("state,expected", [
    ({}, [(0, 0, 2), (1, 2, 5)]),                               # a new run
    ({"done": 3}, [(1, 3, 5)]),                              # Hyperband, 2nd
    ({"done": 1}, [(0, 1, 2), (1, 2, 5)]),                   # Hyperband, 1st
    ({"done": 1, "saved_phase": 0}, [(0, 1, 2), (1, 2, 5)]),  # killed in 1st
    ({"done": 1, "saved_phase": 0, "stopped": True}, [(1, 2, 5)]),  # early
    ({"done": 2, "saved_phase": 0}, [(1, 2, 5)]),             # at the boundary
    ({"done": 4, "saved_phase": 1}, [(1, 4, 5)]),            # killed in 2nd
    ({"done": 3, "saved_phase": 1, "stopped": True}, [(1, 5, 5)]),
    ({"done": 1, "saved_phase": 0, "stopped": True, "diverged": True},
     [(0, 5, 5)]),                                           # NaN: nothing
    ({"done": 5, "saved_phase": 1}, [(1, 5, 5)]),             # all done
])
def test_two_phases_start_where_the_run_stands(state, expected):
    assert plan(TWO, **state) == expected


def test_three_phases_and_an_empty_one():
    epochs = (1, 0, 2, 2)
    assert plan(epochs) == [(0, 0, 1), (2, 1, 3), (3, 3, 5)]
    assert plan(epochs, done=2, saved_phase=2) == [(2, 2, 3), (3, 3, 5)]
    # Early stopping in the third phase skips to the fourth's first epoch.
    assert plan(epochs, done=2, saved_phase=2, stopped=True) == [(3, 3, 5)]


def test_one_phase_is_a_plain_fit():
    assert plan((4,)) == [(0, 0, 4)]
    assert plan((4,), done=4) == [(0, 4, 4)]
    assert plan((4,), done=2, stopped=True) == [(0, 4, 4)]
