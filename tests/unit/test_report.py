"""The plain texts the pages show about a run."""

from dataclasses import replace

from mnist_core.events import Event
from mnist_core.recipe import BEST, FAST, FIRST_LOOK, NOTEBOOK, QUICK_RUN
from mnist_core.report import progress_text, recipe_text, unsettled_batchnorm


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


def test_a_test_score_far_under_training_is_put_down_to_unsettled_batchnorm_where_that_is_the_cause(lab_home):
    """2 epochs on 2,000 images without the re-estimate: training at 78%, the test at 13%, because the test
    reads BatchNorm's moving averages. The page says so, and says nothing where the cause cannot be that."""
    from mnist_core.runs import RunStore
    from mnist_core.spec import Architecture

    store = RunStore(lab_home)

    def run(code: str, recipe: dict, test: float) -> tuple:
        arch = Architecture.from_code(code)
        run_id = store.create_run(code, arch, recipe, 1, 1)
        store.claim_next(worker_pid=0)
        events = [Event("epoch", 2, 16, 32, 0.01, 0.7, 0.78, 2.3, test)]
        store.finish(run_id, "completed", test_accuracy=test)
        return store.get(run_id), events

    said = unsettled_batchnorm(*run("c3x8b_c1x10l_gap_sm", {"epochs": 2}, 0.1332))
    assert said.startswith("Training reached 78% accuracy but the test only 13.32%") and "Re-estimate" in said
    assert unsettled_batchnorm(*run("c3x8b_c1x10l_gap_sm", {"epochs": 2, "recalibrate_bn": True}, 0.1332)) is None
    assert unsettled_batchnorm(*run("c3x8_c1x10l_gap_sm", {"epochs": 2}, 0.1332)) is None  # no BatchNorm
    assert unsettled_batchnorm(*run("c3x8b_c1x10l_gap_sm", {"epochs": 2}, 0.70)) is None  # close to training


def test_a_stored_recipe_is_named_by_the_closest_named_recipe_and_what_it_changed():
    assert recipe_text(replace(QUICK_RUN, epochs=2, seed=3).to_dict()) == "quick with epochs 2 · seed 3"
    assert recipe_text(replace(NOTEBOOK, seed=1).to_dict()) == "notebook · seed 1"
    assert recipe_text(FIRST_LOOK.to_dict()) == "first look · seed 0"
    assert recipe_text({"epochs": "many"}) == "unreadable recipe"
