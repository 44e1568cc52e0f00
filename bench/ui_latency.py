"""Architecture page and Predict path latency against their targets.

    python -m bench.ui_latency

- parameter count of a spec: target <= 5 ms (baseline: building the Keras model just to count)
- server time for the Architecture page's rerun after a BatchNorm toggle (AppTest): target <= 150 ms
- canvas image -> probabilities, preprocessing included: target p95 <= 5 ms
  (numpy forward pass; baselines in the same run: Keras `model.predict` and a plain eager call)
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from mnist_core.budget import summarize
from mnist_core.spec import PRESETS

ROOT = Path(__file__).resolve().parent.parent


def timed(function, repeats: int) -> list[float]:
    """Milliseconds of each call."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append((time.perf_counter() - started) * 1000)
    return times


def p95(values: list[float]) -> float:
    return float(np.percentile(values, 95))


def counting() -> None:
    from mnist_core.model import build_model

    arch = PRESETS["seed-first"]
    ours = timed(lambda: summarize(arch).total, 2000)
    keras_way = timed(lambda: build_model(arch).count_params(), 20)
    ratio = statistics.median(keras_way) / statistics.median(ours)
    print(f"count params: spec arithmetic median {statistics.median(ours):.3f} ms (target <= 5 ms); "
          f"Keras build+count {statistics.median(keras_way):.1f} ms; ratio {ratio:.0f}x")


def architecture_rerun() -> None:
    from streamlit.testing.v1 import AppTest

    os.environ.setdefault("MNIST_LAB_HOME", tempfile.mkdtemp(prefix="bench-ui-"))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    at.switch_page("pages/architecture.py").run()
    times = []
    for round_ in range(30):
        switch = next(t for t in at.toggle if t.label == "batchnorm of conv 6")
        started = time.perf_counter()
        switch.set_value(round_ % 2 == 0).run()
        times.append((time.perf_counter() - started) * 1000)
    print(f"architecture rerun after a toggle (AppTest, server side): median {statistics.median(times):.0f} ms, "
          f"p95 {p95(times):.0f} ms (target <= 150 ms)")


def prediction() -> None:
    import tensorflow as tf

    from mnist_core.model import build_model
    from mnist_core.catalogue import bundled_model, load_predictor
    from mnist_core.predict import limit_blas_threads

    limit_blas_threads()  # as the app's server does
    predictor = load_predictor(bundled_model())
    model = build_model(bundled_model().spec)
    model.load_weights(bundled_model().path)
    canvas = np.zeros((280, 280, 4), dtype=np.uint8)
    canvas[60:220, 130:150] = 255
    canvas[..., 3] = 255
    digit = predictor.predict(canvas).image[None, ..., None]
    ours = timed(lambda: predictor.predict(canvas), 500)
    via_predict = timed(lambda: model.predict(digit, verbose=0), 50)
    eager = timed(lambda: model(tf.constant(digit), training=False).numpy(), 200)
    print(f"canvas -> probabilities: p95 {p95(ours):.2f} ms, median {statistics.median(ours):.2f} ms "
          f"(target p95 <= 5 ms); model.predict median {statistics.median(via_predict):.1f} ms, "
          f"eager call median {statistics.median(eager):.1f} ms")


if __name__ == "__main__":
    architecture_rerun()  # first: the app's server never imports Keras, and Streamlit slows down once it does
    counting()
    prediction()
