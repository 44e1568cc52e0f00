"""MNIST loading: the shared IDX files, raw and npz copies, and clear errors for broken files."""

import gzip
import shutil

import numpy as np
import pytest

from mnist_core.data import CANONICAL, MnistDataError, load_mnist

TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_loads_verified_mnist_from_the_configured_folder(mnist):
    """60k/10k uint8 28x28 images with the canonical class counts."""
    assert mnist.x_train.shape == (60000, 28, 28) and mnist.x_test.shape == (10000, 28, 28)
    assert mnist.x_train.dtype == np.uint8 and mnist.y_train.dtype == np.uint8
    assert np.bincount(mnist.y_train).tolist() == TRAIN_COUNTS
    assert np.bincount(mnist.y_test).tolist() == TEST_COUNTS


def test_loaded_once_per_process(mnist_dir):
    """A second call returns the same arrays instead of reading 55 MB again."""
    assert load_mnist(mnist_dir) is load_mnist(mnist_dir)


def test_reads_the_environment_variable(mnist_dir, monkeypatch):
    monkeypatch.setenv("MNIST_DATA_DIR", str(mnist_dir))
    assert load_mnist().source == str(mnist_dir.resolve())


def _copy(mnist_dir, tmp_path, decompress=()):
    for name in CANONICAL:
        source = mnist_dir / f"{name}.gz"
        if name in decompress:
            (tmp_path / name).write_bytes(gzip.decompress(source.read_bytes()))
        else:
            shutil.copy(source, tmp_path / f"{name}.gz")
    return tmp_path


def test_raw_idx_files_load_too(mnist_dir, tmp_path, mnist):
    folder = _copy(mnist_dir, tmp_path, decompress=("t10k-labels-idx1-ubyte", "t10k-images-idx3-ubyte"))
    loaded = load_mnist(folder)
    assert np.array_equal(loaded.x_test, mnist.x_test) and np.array_equal(loaded.y_test, mnist.y_test)


def test_keras_npz_loads_and_is_verified(tmp_path, mnist):
    np.savez_compressed(tmp_path / "mnist.npz", x_train=mnist.x_train, y_train=mnist.y_train,
                        x_test=mnist.x_test, y_test=mnist.y_test)
    assert np.array_equal(load_mnist(tmp_path).y_train, mnist.y_train)
    bad = tmp_path / "bad"
    bad.mkdir()
    labels = mnist.y_test.copy()
    labels[0] = (labels[0] + 1) % 10
    np.savez_compressed(bad / "mnist.npz", x_train=mnist.x_train, y_train=mnist.y_train,
                        x_test=mnist.x_test, y_test=labels)
    with pytest.raises(MnistDataError, match="corrupted: SHA-256"):
        load_mnist(bad)


def test_missing_file_names_it_and_the_fix(mnist_dir, tmp_path):
    folder = _copy(mnist_dir, tmp_path)
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(MnistDataError) as caught:
        load_mnist(folder)
    assert "missing t10k-labels-idx1-ubyte" in str(caught.value) and "MNIST_DATA_DIR" in str(caught.value)


def test_truncated_gzip_is_reported(mnist_dir, tmp_path):
    folder = _copy(mnist_dir, tmp_path)
    path = folder / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:100_000])
    with pytest.raises(MnistDataError, match="truncated or corrupted"):
        load_mnist(folder)


def test_flipped_byte_fails_the_checksum(mnist_dir, tmp_path):
    folder = _copy(mnist_dir, tmp_path)
    path = folder / "train-labels-idx1-ubyte.gz"
    raw = bytearray(gzip.decompress(path.read_bytes()))
    raw[1000] ^= 0x01
    path.write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(MnistDataError, match="train-labels-idx1-ubyte.gz is corrupted: SHA-256"):
        load_mnist(folder)


def test_missing_folder_is_reported(tmp_path):
    with pytest.raises(MnistDataError, match="does not exist"):
        load_mnist(tmp_path / "nowhere")
