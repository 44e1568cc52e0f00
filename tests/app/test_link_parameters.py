"""Links edited by hand: every query parameter that is not a number in range is set aside in one sentence."""

import pytest

from tests.app.conftest import metrics, texts

NOT_NUMBERS = ["²", "١٢", "99999999999999999999999"]  # '²'.isdigit() is True; int('١٢') is 12; 23 digits overflow


def test_a_run_in_the_link_that_is_no_run_number_shows_the_train_page(app, idle_executor):
    """?run=² once raised ValueError and ?run=99999999999999999999999 OverflowError in the live view."""
    for text in NOT_NUMBERS:
        at = app("train", query={"run": text})
        assert not at.exception
        assert "No training yet. Press Quick run or Start training to train the current architecture." \
            in texts(at.info), text
        assert "The link's run is not a run number: this page shows the newest run instead." in texts(at.info)


def test_a_run_in_the_link_that_does_not_exist_is_said_not_dropped(app, idle_executor):
    at = app("train", query={"run": "42"})
    assert not at.exception
    assert "There is no run 42 (deleted, or from another server): this page shows the newest run instead." \
        in texts(at.info)


@pytest.mark.parametrize("text", [*NOT_NUMBERS, "[a link](https://example.com)"])
def test_a_model_in_the_link_that_is_no_run_number_says_so_without_echoing_it(app, text):
    """The Predict page names the model it shows instead, and never shows the link's text (which is markdown)."""
    at = app("predict", query={"model": text})
    infos = texts(at.info)
    assert any(info.startswith("The link's model is not a run number: showing Bundled") for info in infos), infos
    assert not any(text in info for info in infos)


@pytest.mark.parametrize("text", ["²", "١٦٠٠٠", "-5", "9" * 5_000])
def test_a_budget_in_the_link_that_is_no_number_in_range_keeps_the_default(app, text):
    """?budget=١٦٠٠٠ once read as 16,000 (int takes any script's digits); only ASCII digits 1-10,000,000 count."""
    at = app(query={"budget": text})
    assert "The link's budget could not be used; showing the default 15,000 total params." in texts(at.warning)
    at.switch_page("pages/architecture.py").run()
    assert metrics(at)["Spare"] == "+39" and at.query_params["budget"] == "15000"
