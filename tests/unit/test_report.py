"""The plain texts the pages show about a run."""

from dataclasses import replace

from mnist_core.events import Event
from mnist_core.recipe import BEST, FAST
from mnist_core.report import progress_text


def batch_event(epoch: float, batch: int) -> Event:
    return Event(kind="batch", epoch=epoch, batch=batch, step=batch, lr=0.01, loss=0.1, accuracy=0.99, elapsed=10.0,
                 eta=5.0)


def test_progress_names_the_epoch_batch_and_time_left():
    assert progress_text(batch_event(1.5, 30), replace(FAST, epochs=20)) == "Epoch 2/20, batch 30/60 · ETA 5 s"


def test_the_last_epoch_of_a_recipe_with_the_re_estimate_says_what_follows():
    """The bar nears its end, then waits for the re-estimate: the line says it is coming, only then."""
    last_epoch = batch_event(BEST.epochs - 0.02, 460)
    assert progress_text(last_epoch, BEST).endswith(
        f"Epoch {BEST.epochs}/{BEST.epochs}, batch 460/469 · ETA 5 s · then BatchNorm is re-estimated on the "
        "clean training images")
    assert "BatchNorm" not in progress_text(batch_event(BEST.epochs - 1.5, 230), BEST)
    assert "BatchNorm" not in progress_text(batch_event(FAST.epochs - 0.02, 460), FAST)


def test_after_the_last_epoch_the_line_says_the_model_is_being_saved():
    """The last epoch's event comes before the worker saves the model and reads the test set: not 'ETA 0 s'."""
    last = Event(kind="epoch", epoch=float(FAST.epochs), batch=469, step=469 * FAST.epochs, lr=0.0, loss=0.1,
                 accuracy=0.99, val_loss=0.02, val_accuracy=0.99, elapsed=300.0, eta=0.0)
    assert progress_text(last, FAST) == "Epoch 5/5 done · saving the model and finding its mistakes on the test set"
    assert progress_text(replace(last, epoch=2.0), FAST) == "Epoch 2/5, batch 469/469 · ETA 0 s"
