"""The shared progress bar ends at the steps a loop really ran, and green in a notebook."""
import tqdm.auto
import tqdm.notebook

from refimpl.core.training import StepBar


def test_early_stop_ends_at_steps_run():
    bar = StepBar(10, "test")
    for step in bar:
        if step == 4:
            break
    bar.close()
    assert (bar.bar.n, bar.bar.total) == (4, 4)


def test_full_run_keeps_total():
    bar = StepBar(5, "test")
    steps = list(bar)
    bar.close()
    assert steps == [1, 2, 3, 4, 5] and (bar.bar.n, bar.bar.total) == (5, 5)


def test_notebook_bar_green_after_break(monkeypatch):
    monkeypatch.setattr(tqdm.auto, "tqdm", tqdm.notebook.tqdm)
    bar = StepBar(110, "SFT")
    for step in bar:
        if step == 110 - 1:                    # stop one before the end, as SFT does
            break
    bar.close()
    assert bar.bar.container.children[1].bar_style == "success"
    assert (bar.bar.n, bar.bar.total, bar.bar.container.children[1].max) == (109, 109, 109)
    assert "109/109" in repr(bar.bar.container)   # the text a stored notebook shows


def test_disabled_bar_still_counts():
    bar = StepBar(3, "quiet", enabled=False)
    assert list(bar) == [1, 2, 3]
    bar.close()
