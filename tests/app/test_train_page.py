"""The Train page in every state a user reaches, with real runs trained by real worker processes on
small slices: queued, live in epoch 2, stopped, completed, failed, interrupted, revisited, reloaded."""

import json
import os

from mnist_core.budget import summarize
from mnist_core.events import Event
from mnist_core.jobs import Lab
from mnist_core.recipe import ABOUT, RECIPES
from mnist_core.runs import RunStore
from mnist_core.spec import PRESETS
from tests.app.conftest import metrics, texts
from tests.browser import free_port
from tests.conftest import wait_for

LONG = {"epochs_notebook": 50, "train_subset_notebook": 2048}  # ~3 s an epoch here: long enough to act on mid-run
SHORT = {"epochs_notebook": 1, "train_subset_notebook": 256}


def start(at, **fields):
    """Fill the recipe form and press Start; returns the new run's id."""
    for key, value in fields.items():
        at.number_input(key=key).set_value(value)
    next(b for b in at.button if b.label == "Start training").click().run()
    return at.session_state["watch_run"]


def button(at, label, help_text=None):
    return next(b for b in at.button if b.label == label and (help_text is None or b.help == help_text))


def headings(at) -> list[str]:
    return texts(at.subheader)


def test_live_run_in_epoch_two_shows_its_chart_then_stop_shows_the_stopped_run(app, lab_home):
    at = app("train")
    run_id = start(at, **LONG)
    store = RunStore(lab_home)
    wait_for(lambda: any(e.kind == "epoch" for e in store.events(run_id))
             and store.events(run_id)[-1].epoch > 1, timeout=180)
    at.run()
    assert f"Run {run_id}: seed-final · running" in headings(at)
    assert at.get("plotly_chart"), "the live chart is drawn once events arrive"
    progress = at.get("progress")[0].proto.text
    assert progress.startswith("Epoch ") and int(progress.split()[1].split("/")[0]) >= 2, progress

    button(at, "Stop", f"Stop run {run_id}").click().run()
    wait_for(lambda: store.get(run_id).status == "stopped", timeout=60)
    at.run()
    assert f"Run {run_id}: seed-final · stopped" in headings(at)
    assert any("was stopped" in text for text in texts(at.info))
    done = sum(e.kind == "epoch" for e in store.events(run_id))
    assert metrics(at)["Epochs"] == f"{done} / 50" and done >= 1
    assert metrics(at)["Test accuracy"].endswith("%")
    assert at.get("plotly_chart") and not any(b.label == "Stop" for b in at.button)


def test_completed_run_shows_its_final_numbers_and_a_way_to_predict_with_it(app, lab_home):
    """Two steps of the notebook's recipe on 256 images learn nothing (always one digit): the page says so."""
    at = app("train")
    run_id = start(at, **SHORT)
    run = Lab(lab_home).wait(run_id, timeout=240)
    assert run.status == "completed" and run.test_accuracy < 0.126
    at.run()
    assert not at.exception
    assert f"Run {run_id}: seed-final · completed" in headings(at)
    assert metrics(at)["Final test accuracy"] == f"{run.test_accuracy:.2%} (did not learn)"
    assert any(text.startswith(f"This run did not learn: {run.test_accuracy:.2%} is within noise")
               for text in texts(at.warning))
    assert metrics(at)["Epochs"] == "1 / 1" and metrics(at)["Params"] == "14,960"
    assert at.get("plotly_chart")
    link = at.get("page_link")[-1].proto
    assert link.label == f"Try run {run_id}'s model on the Predict page" and f"model={run_id}" in link.query_string

    at.switch_page("pages/architecture.py").run()  # a revisit shows the same run, finished
    at.switch_page("pages/train.py").run()
    assert f"Run {run_id}: seed-final · completed" in headings(at)


def test_a_stop_that_arrives_after_training_says_the_run_completed(app, lab_home):
    """Stop pressed while the worker saved the finished model: the run completed, and the page says why."""
    store, arch = RunStore(lab_home), PRESETS["seed-final"]
    run_id = store.create_run(arch.name, arch, {"epochs": 1, "batch_size": 128, "learning_rate": 0.003, "seed": 0},
                              summarize(arch).total, summarize(arch).trainable)
    store.claim_next(worker_pid=0)
    store.add_event(run_id, 0, Event("epoch", 1, 10, 10, 0.003, 0.1, 0.97, 0.08, 0.98, 5.0, 0.0))
    store.request_stop(run_id)
    store.finish(run_id, "completed", test_accuracy=0.98, test_loss=0.05)
    at = app("train")
    assert f"Run {run_id}: seed-final · completed" in headings(at)
    assert f"Run {run_id} had finished training when the stop reached it, so it completed." in texts(at.info)
    assert metrics(at)["Final test accuracy"] == "98.00%"


def test_failed_run_says_why(app, lab_home, tmp_path, monkeypatch):
    """A run whose data cannot be loaded shows 'failed' and the reason, not a traceback."""
    monkeypatch.setenv("MNIST_DATA_DIR", str(tmp_path / "no-mnist-here"))
    at = app("train")
    run_id = start(at, **SHORT)
    wait_for(lambda: RunStore(lab_home).get(run_id).status == "failed", timeout=240)
    at.run()
    assert f"Run {run_id}: seed-final · failed" in headings(at)
    assert any(text.startswith(f"Run {run_id} failed:") and "does not exist" in text for text in texts(at.error))


def test_interrupted_run_keeps_its_history(app, lab_home, idle_executor):
    """A run whose worker died mid-run (tests/reliability kills one for real): the page finds it without a
    trainer, shows it interrupted with its chart, and a reload agrees."""
    store, arch = RunStore(lab_home), PRESETS["seed-final"]
    run_id = store.create_run(arch.name, arch, {"epochs": 50, "train_subset": 2048, "seed": 0},
                              summarize(arch).total, summarize(arch).trainable)
    store.claim_next(worker_pid=os.getpid())  # no worker of this Lab serves it: as after a SIGKILL
    for seq, epoch in enumerate((1, 2)):
        store.add_event(run_id, seq, Event("epoch", epoch, 16, 16 * epoch, 0.003, 0.3, 0.9, 0.2, 0.93, 3.0 * epoch, 0.0))
    at = app("train")
    assert f"Run {run_id}: seed-final · interrupted" in headings(at)
    assert any("was interrupted" in text for text in texts(at.warning))
    assert at.get("plotly_chart") and metrics(at)["Epochs"] == "2 / 50"

    reloaded = app("train")  # a new session, as after a browser reload, shows the newest run
    assert f"Run {run_id}: seed-final · interrupted" in headings(reloaded)


def test_second_start_queues_both_runs_show_with_their_own_stop(app, lab_home):
    """While run 1 trains, Start queues run 2: run 1's live view stays in front (the second Start once hid its
    chart), run 2 is listed under it as queued, each with a Stop; stopping the queued run removes its line and
    its 'queued' notice; the running one stays in front and stoppable."""
    at = app("train")
    first = start(at, **LONG)
    store = RunStore(lab_home)
    wait_for(lambda: store.get(first).status == "running" and store.events(first), timeout=180)
    second = start(at, seed_notebook=1)  # another run: the same one again would be refused as a duplicate
    assert headings(at)[0] == f"Run {first}: seed-final · running" and at.get("plotly_chart")
    assert at.get("progress")[0].proto.text.startswith("Epoch ")
    assert any(f"Run {second} is queued: 1 run ahead of it trains first" in text for text in texts(at.caption))
    assert f"Run {second}: seed-final · queued" in texts(at.markdown)
    assert {b.help for b in at.button if b.label == "Stop"} == {f"Stop run {first}", f"Stop run {second}"}
    assert "Also training or queued" in headings(at)

    button(at, "Stop", f"Stop run {second}").click().run()
    assert store.get(second).status == "stopped"
    assert not any("is queued" in text for text in texts(at.caption) + texts(at.info))
    assert headings(at)[0] == f"Run {first}: seed-final · running" and "Also training or queued" not in headings(at)
    assert {b.help for b in at.button if b.label == "Stop"} == {f"Stop run {first}"}

    button(at, "Stop", f"Stop run {first}").click().run()
    wait_for(lambda: RunStore(lab_home).get(first).finished, timeout=60)


def test_each_recipe_fills_the_form_with_the_values_a_run_will_use(app, lab_home, idle_executor):
    """Notebook is the default; Fast shows one-cycle; Best adds augmentation; Quick run locks one pass of 60,000."""
    at = app("train")
    assert at.segmented_control(key="recipe").value == "notebook"
    assert all(about in at.segmented_control(key="recipe").help for about in ABOUT.values())
    assert at.number_input(key="epochs_notebook").value == 20 and at.number_input(key="train_subset_notebook").value == 60_000
    assert at.selectbox(key="schedule_notebook").value == "inverse-time"
    at.segmented_control(key="recipe").set_value("fast").run()
    assert at.selectbox(key="schedule_fast").value == "one-cycle" and at.number_input(key="epochs_fast").value == 5
    assert at.number_input(key="label_smoothing_fast").value > 0 and at.number_input(key="rotate_fast").value == 0
    assert not at.checkbox(key="recalibrate_bn_fast").value
    assert any(text.startswith("5 epochs on 60,000 images · one-cycle: warm-up") for text in texts(at.caption))
    at.segmented_control(key="recipe").set_value("best").run()
    assert at.number_input(key="rotate_best").value > 0 and at.number_input(key="zoom_best").value > 0
    assert at.checkbox(key="recalibrate_bn_best").value
    assert any("it adds no parameters" in text for text in texts(at.caption))
    assert "Best's 99.58% (mean of 5 seeds) was measured on the best-under-15k preset; this page trains seed-final." \
        in texts(at.info)
    button(at, "Train best-under-15k instead").click().run()
    assert any(text.startswith("**best-under-15k**: 14,846 total") for text in texts(at.markdown))
    assert not any(text.startswith("Best's") for text in texts(at.info))
    at.segmented_control(key="recipe").set_value("quick").run()
    epochs, images = at.number_input(key="epochs_quick"), at.number_input(key="train_subset_quick")
    assert (epochs.value, images.value) == (1, 60_000) and epochs.disabled and images.disabled


def test_a_run_trains_with_every_field_of_the_form(app, lab_home):
    """Edited fields of the Fast recipe are what the stored run trains with."""
    at = app("train")
    at.segmented_control(key="recipe").set_value("fast").run()
    at.selectbox(key="optimizer_fast").set_value("adamw").run()  # weight decay applies to AdamW only
    at.number_input(key="weight_decay_fast").set_value(0.0005)
    at.checkbox(key="recalibrate_bn_fast").check()
    run_id = start(at, epochs_fast=1, train_subset_fast=256, rotate_fast=5.0, label_smoothing_fast=0.05)
    recipe = RunStore(lab_home).get(run_id).recipe
    assert (recipe["schedule"], recipe["optimizer"], recipe["weight_decay"], recipe["rotate"],
            recipe["label_smoothing"], recipe["epochs"], recipe["train_subset"], recipe["recalibrate_bn"]) == (
        "one-cycle", "adamw", 0.0005, 5.0, 0.05, 1, 256, True)
    assert Lab(lab_home).wait(run_id, timeout=240).status == "completed"


def test_fields_a_choice_makes_irrelevant_are_disabled_and_left_out(app, lab_home, idle_executor):
    """Notebook (inverse-time, Adam): warm-up and weight decay are off; one-cycle turns warm-up on and LR decay off."""
    at = app("train")
    assert at.number_input(key="warmup_notebook").disabled and at.number_input(key="weight_decay_notebook").disabled
    assert not at.number_input(key="lr_decay_notebook").disabled
    at.selectbox(key="schedule_notebook").set_value("one-cycle").run()
    assert not at.number_input(key="warmup_notebook").disabled and at.number_input(key="lr_decay_notebook").disabled
    at.selectbox(key="optimizer_notebook").set_value("adamw").run()
    at.number_input(key="weight_decay_notebook").set_value(0.001).run()
    at.selectbox(key="optimizer_notebook").set_value("adam").run()  # the typed weight decay no longer applies
    run_id = start(at, epochs_notebook=1, train_subset_notebook=256)
    recipe = RunStore(lab_home).get(run_id).recipe
    assert (recipe["schedule"], recipe["optimizer"], recipe["weight_decay"]) == ("one-cycle", "adam", 0.0)


def test_the_chosen_recipe_survives_a_page_switch(app, idle_executor):
    """Quick run is still chosen after visiting another page (a new user lost it, then started a 20-epoch run)."""
    at = app("train")
    at.segmented_control(key="recipe").set_value("quick").run()
    at.switch_page("pages/predict.py").run()
    at.switch_page("pages/train.py").run()
    assert at.segmented_control(key="recipe").value == "quick"
    assert at.number_input(key="epochs_quick").value == 1


def test_the_page_says_where_runs_train(app):
    at = app("train")
    assert "Runs train on this machine, one at a time." in texts(at.caption)


def test_an_unreachable_ray_cluster_is_one_clear_message_and_the_run_waits(app, lab_home, monkeypatch):
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    monkeypatch.setenv("MNIST_LAB_EXECUTOR", "ray")
    monkeypatch.setenv("RAY_ADDRESS", address)
    at = app("train")
    run_id = start(at, **SHORT)
    wait_for(lambda: at.run() and any("Cannot reach the Ray cluster" in text for text in texts(at.error)), timeout=90)
    [message] = [text for text in texts(at.error) if "Ray" in text]
    assert message.startswith(f"Cannot reach the Ray cluster at {address}: ") and "Runs stay queued" in message
    assert f"Runs train on the Ray cluster at {address}, which cannot be reached now." in texts(at.caption)
    assert f"Run {run_id}: seed-final · queued" in headings(at)
    assert RunStore(lab_home).get(run_id).status == "queued"


def test_a_bad_executor_setting_is_named_on_the_page(app, monkeypatch):
    monkeypatch.setenv("MNIST_LAB_EXECUTOR", "cluster")
    at = app("train")
    assert "MNIST_LAB_EXECUTOR must be one of local, ray, not 'cluster'." in texts(at.error)
    monkeypatch.delenv("MNIST_LAB_EXECUTOR")  # the fixture's clean-up opens a Lab of its own


def test_a_reload_of_a_queued_runs_link_shows_the_live_run_and_lists_its_own(app, lab_home):
    """Two tabs: the second tab's queued run is in its link. Its reload once showed that run alone, with no
    chart; the run in training is shown whole now, and the tab's own queued run is listed under it."""
    first_tab = app("train")
    first = start(first_tab, **LONG)
    second_tab = app("train")
    second = start(second_tab, **SHORT)
    assert second_tab.query_params["run"] == str(second)
    store = RunStore(lab_home)
    wait_for(lambda: store.get(first).status == "running" and store.events(first), timeout=180)
    reloaded = app("train", query={"run": str(second)})
    assert not reloaded.exception
    shown = [heading for heading in headings(reloaded) if heading.startswith("Run ")]
    assert shown == [f"Run {first}: seed-final · running"] and reloaded.get("plotly_chart")
    assert "Also training or queued" in headings(reloaded)
    assert f"Run {second}: seed-final · queued" in texts(reloaded.markdown)
    assert any(f"Run {second} is queued" in text for text in texts(reloaded.caption))
    button(reloaded, "Stop", f"Stop run {second}").click().run()
    button(reloaded, "Stop", f"Stop run {first}").click().run()
    wait_for(lambda: store.get(first).finished, timeout=60)


def test_stop_keeps_the_stopped_run_in_front_while_the_next_one_starts(app, lab_home):
    """Stop on the run in front once showed the queued run behind it at once, with its Stop where the first was:
    the stopped run stays in front, saying it was stopped, and the next one is listed with its own Stop."""
    at = app("train")
    first = start(at, **LONG)
    store = RunStore(lab_home)
    wait_for(lambda: store.get(first).status == "running" and store.events(first), timeout=180)
    second = start(at, **LONG, seed_notebook=1)
    button(at, "Stop", f"Stop run {first}").click().run()
    wait_for(lambda: store.get(first).status == "stopped", timeout=60)
    at.run()
    assert not at.exception
    assert [h for h in headings(at) if h.startswith("Run ")][0] == f"Run {first}: seed-final · stopped"
    assert any(f"Run {first} was stopped" in text for text in texts(at.info))
    assert "Also training or queued" in headings(at)
    assert any(text.startswith(f"Run {second}: seed-final · ") for text in texts(at.markdown))
    button(at, "Stop", f"Stop run {second}").click().run()
    wait_for(lambda: store.get(second).finished, timeout=60)


def test_quick_run_starts_the_quick_recipe_in_one_click(app, lab_home, monkeypatch, idle_executor):
    """The Notebook recipe chosen: Quick run still trains the quick recipe, and its run is the one shown; the
    server's log gets no widget warning (Streamlit logs it once per process, hence the reset)."""
    from streamlit.elements.lib import policies

    monkeypatch.setattr(policies, "_shown_default_value_warning", False)
    logged = []
    monkeypatch.setattr(policies._LOGGER, "warning", lambda message, *args, **kwargs: logged.append(message % args))
    at = app("train")
    assert at.segmented_control(key="recipe").value == "notebook"
    button(at, "Quick run").click().run()
    assert logged == []
    run_id = at.session_state["watch_run"]
    run = RunStore(lab_home).get(run_id)
    assert (run.recipe["epochs"], run.recipe["train_subset"], run.recipe["learning_rate"], run.recipe["schedule"]) \
        == (RECIPES["quick"].epochs, None, RECIPES["quick"].learning_rate, "one-cycle")
    assert [h for h in headings(at) if h.startswith("Run ")][0].startswith(f"Run {run_id}: seed-final · ")
    assert at.segmented_control(key="recipe").value == "quick"  # the caption describes the run that trains
    assert any(text.startswith("1 epoch on 60,000 images · one-cycle") for text in texts(at.caption))
    button(at, "Stop", f"Stop run {run_id}").click().run()
    wait_for(lambda: RunStore(lab_home).get(run_id).finished, timeout=60)


def test_the_recipe_caption_follows_the_edited_fields(app, lab_home, idle_executor):
    """Edited epochs, images and learning rate are what the caption says Start would train."""
    at = app("train")
    assert any(text.startswith("20 epochs on 60,000 images · inverse-time: 0.003 /") for text in texts(at.caption))
    at.number_input(key="epochs_notebook").set_value(3)
    at.number_input(key="train_subset_notebook").set_value(10_000)
    at.number_input(key="learning_rate_notebook").set_value(0.005).run()
    assert any(text.startswith("3 epochs on 10,000 images · inverse-time: 0.005 /") for text in texts(at.caption))
    at.selectbox(key="schedule_notebook").set_value("one-cycle").run()
    assert any(text.startswith("3 epochs on 10,000 images · one-cycle: warm-up over 0% of the batches to 0.005")
               for text in texts(at.caption))
    assert not any(text.startswith("20 epochs") for text in texts(at.caption))


def test_the_recipe_fields_take_the_ranges_the_core_checks(app, idle_executor):
    """The page's inputs once allowed batch 8-4,096 while the core took 1-8,192; both read FIELDS now."""
    from mnist_core.recipe import FIELDS

    at = app("train")
    assert not at.exception
    for field in FIELDS:
        if field.kind in (int, float):
            box = at.number_input(key=f"{field.name}_notebook")
            assert (box.min, box.max) == (field.smallest, field.high), field.name


def test_the_page_says_what_a_run_costs_here_and_refuses_one_over_the_servers_caps(app, lab_home, monkeypatch, idle_executor):
    """200 notebook epochs take hours on 2 cores: the page says so before Start, and Start queues nothing."""
    monkeypatch.delenv("MNIST_LAB_MAX_RUN_MINUTES", raising=False)
    at = app("train")
    assert any(text.endswith("Takes about 12 min here, 180 MB of training memory.") for text in texts(at.caption))
    assert not at.warning
    at.number_input(key="epochs_notebook").set_value(200).run()
    [warning] = texts(at.warning)
    assert warning.startswith("Start would be refused: this run would take about 1.9 h here, over this "
                              "server's limit of 60 minutes a run (MNIST_LAB_MAX_RUN_MINUTES)")
    button(at, "Start training").click().run()
    assert any(text.startswith("Training not started: this run would take about 1.9 h here")
               for text in texts(at.error))
    assert RunStore(lab_home).list() == []
    monkeypatch.setenv("MNIST_LAB_MAX_RUN_MINUTES", "soon")  # a setting the server cannot read: said, no traceback
    at.run()
    assert any("MNIST_LAB_MAX_RUN_MINUTES must be a positive number" in text for text in texts(at.warning))


def test_a_validation_split_trains_scores_epochs_on_it_and_tests_once(app, lab_home):
    """Validation images set on the form: the caption counts the images left to train on, the run holds them out,
    its chart plots validation (not test) accuracy, and its final test accuracy says it was read once."""
    at = app("train")
    at.number_input(key="validation_notebook").set_value(5_000).run()
    assert any(text.startswith("20 epochs on 55,000 images") for text in texts(at.caption))
    run_id = start(at, **SHORT)
    assert RunStore(lab_home).get(run_id).recipe["validation"] == 5_000
    run = Lab(lab_home).wait(run_id, timeout=240)
    assert run.status == "completed"
    at.run()
    assert metrics(at)["Final test accuracy"].startswith(f"{run.test_accuracy:.2%}")
    assert any(text.startswith("The test digits were read once, after training; each epoch was scored on the "
                               "5,000 validation images (last epoch: ") for text in texts(at.caption))
    chart = json.loads(at.get("plotly_chart")[-1].proto.spec)
    names = [trace.get("name") for trace in chart["data"]]
    assert "validation accuracy" in names and "validation loss" in names and "test accuracy" not in names


def test_a_stored_recipe_that_no_longer_reads_is_named_not_a_traceback(app, lab_home, idle_executor):
    """A run whose stored recipe breaks a rule (a store edited by hand, or by another version): its view says so,
    at every redraw, and the page goes on."""
    store = RunStore(lab_home)
    arch = PRESETS["seed-final"]
    run_id = store.create_run("seed-final", arch, {"train_subset": 55_000, "validation": 10_000},
                              summarize(arch).total, summarize(arch).trainable)
    store.claim_next(worker_pid=0)
    store.finish(run_id, "completed", test_accuracy=0.98)
    at = app("train", query={"run": str(run_id)})
    assert f"Run {run_id}: seed-final · completed" in headings(at)
    assert any(text.startswith(f"Run {run_id}'s stored recipe cannot be read (Invalid recipe: the training subset")
               for text in texts(at.error))


def test_the_live_view_redraws_every_second_while_a_run_trains_and_every_few_seconds_after(app, lab_home,
                                                                                          idle_executor, monkeypatch):
    """A finished run alone: the page looks again every 3 s. A run starts training (a worker of this Lab, from
    store rows): the page sets the live view up again at 1 s, and the run is shown live."""
    from streamlit.runtime.forward_msg_queue import ForwardMsgQueue

    paces = []
    enqueue = ForwardMsgQueue.enqueue

    def watch(queue, msg):
        if msg.HasField("auto_rerun"):
            paces.append(msg.auto_rerun.interval)
        return enqueue(queue, msg)

    monkeypatch.setattr(ForwardMsgQueue, "enqueue", watch)
    store, arch = RunStore(lab_home), PRESETS["seed-final"]
    counts = summarize(arch)
    done = store.create_run(arch.name, arch, {"epochs": 1, "seed": 0}, counts.total, counts.trainable)
    store.claim_next(worker_pid=0)
    store.finish(done, "completed", test_accuracy=0.98)
    at = app("train")
    assert f"Run {done}: seed-final · completed" in headings(at) and paces[-1] == 3.0
    training = store.create_run(arch.name, arch, {"epochs": 5, "seed": 1}, counts.total, counts.trainable)
    idle_executor.workers[0] = os.getpid()
    store.claim_next(worker_pid=os.getpid())
    store.add_event(training, 0, Event("batch", 0.1, 10, 10, 0.003, 0.5, 0.8, None, None, 2.0, 40.0))
    at.run()
    assert f"Run {training}: seed-final · running" in headings(at) and paces[-1] == 1.0
