"""A handwriting set as large as the store allows: importing it, opening its page, judging a model on it.

    MNIST_DATA_DIR=/path/to/mnist python -m bench.sample_set [count]

`count` MNIST test digits (default: the store's cap) go into a fresh run store by `import_npz`;
the My handwriting page is opened in AppTest (server time of its script run, target under 2 s);
the bundled model judges the set through `judge.evaluate`, and digit by digit as a baseline.
"""

from __future__ import annotations

import atexit
import io
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def seconds(function) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def main() -> None:
    from streamlit.testing.v1 import AppTest

    from mnist_core.data import load_mnist
    from mnist_core.judge import evaluate
    from mnist_core.catalogue import bundled_model, load_predictor
    from mnist_core.runs import RunStore
    from mnist_core.samples import MAX_SAMPLES, SampleStore

    count = int(sys.argv[1]) if len(sys.argv) > 1 else MAX_SAMPLES
    mnist = load_mnist()
    home = tempfile.mkdtemp()
    atexit.register(shutil.rmtree, home, True)  # registered first, so it runs after the Lab's own shutdown
    os.environ["MNIST_LAB_HOME"] = home
    store = SampleStore(RunStore(home))
    data = _npz(mnist.x_test[:count], mnist.y_test[:count])
    print(f"import {count:,} digits ({len(data) / 1e6:.1f} MB): {seconds(lambda: store.import_npz(data)):.2f} s")

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    at.run()
    page = seconds(lambda: at.switch_page("pages/handwriting.py").run())
    rerun = seconds(at.run)
    print(f"My handwriting page: {page:.2f} s to open, {rerun:.2f} s to rerun, {len(at.image)} images drawn")

    saved = store.list()

    def one_at_a_time():
        predictor = load_predictor(bundled_model())
        return [predictor.probabilities(sample.digit28) for sample in saved]

    judged = seconds(lambda: evaluate(bundled_model(), saved))
    one_by_one = seconds(one_at_a_time)
    print(f"judge the bundled model: evaluate {judged:.2f} s; loaded and read one digit at a time "
          f"{one_by_one:.2f} s")


def _npz(images: np.ndarray, labels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, images=images, labels=labels)
    return buffer.getvalue()


if __name__ == "__main__":
    main()
