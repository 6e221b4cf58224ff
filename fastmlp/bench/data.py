"""The data of ``fastmlp bench``: MNIST, downloaded when missing, else scikit-learn's digits."""

from dataclasses import dataclass

import numpy as np

from fastmlp.datasets import MNISTDownloadError, MNISTError, get_data_home, load_mnist, \
    mnist_available

__all__ = ["BenchData", "load_bench_data", "load_digits_data", "DOWNLOAD_TIMEOUT"]

#: Seconds a mirror may stall before the next is tried: an offline machine
#: falls back to digits after at most three such waits.
DOWNLOAD_TIMEOUT = 10


@dataclass
class BenchData:
    """Training and test data for the benchmark.

    Attributes
    ----------
    name : {"MNIST", "digits"}
        Which data set was loaded.
    X_train, X_test : ndarray of shape (n_samples, n_features)
        Pixel values in [0, 1], in the benchmark dtype.
    y_train, y_test : ndarray of shape (n_samples,)
        Integer labels.
    notice : str or None
        Why MNIST was not used and how to get it, for the fallback data set.
    source : str
        Where the data came from, in words: found in a directory, downloaded
        into it, or scikit-learn's bundled copy.
    n_available : int or None
        Training rows the data set has, when only the first ones are used.
    """

    name: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    notice: str = None
    source: str = ""
    n_available: int = None


def load_digits_data(dtype=np.float32):
    """Load scikit-learn's bundled digits data set as the MNIST stand-in.

    Parameters
    ----------
    dtype : numpy dtype, default=numpy.float32
        Type of ``X``.

    Returns
    -------
    data : BenchData
        1347 training and 450 test images of 8x8 pixels scaled to [0, 1]
        (stratified split, fixed seed); ``notice`` is None.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X = (X / 16).astype(dtype)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, stratify=y, random_state=0)
    return BenchData("digits", X_train, y_train, X_test, y_test,
                     source="scikit-learn's bundled digits data set")


def _fallback_notice(exc, download):
    if download and isinstance(exc, MNISTDownloadError):
        what = "MNIST could not be downloaded"
        hint = ""
    elif download:
        what = "MNIST is not usable"
        hint = ""
    else:
        what = "MNIST is not available and --no-download was given"
        hint = "\nOr rerun without --no-download to fetch MNIST (about 11 MB)."
    return (f"{what}, so this run uses scikit-learn's small digits data set (8x8 images) "
            f"instead; its timings say little about MNIST.\nReason: {exc}{hint}")


def load_bench_data(data_home=None, dtype=np.float32, n_train=None, download=True,
                    announce=None):
    """Load MNIST, downloading missing files, or fall back to digits when that fails.

    Never raises for want of data: missing files that cannot be downloaded,
    and corrupt files, give the digits data set with a ``notice`` that says
    why and how to get MNIST.

    Parameters
    ----------
    data_home : str or os.PathLike, optional
        Directory with the MNIST files; see :func:`fastmlp.datasets.get_data_home`.
    dtype : numpy dtype, default=numpy.float32
        Type of ``X``.
    n_train : int, optional
        Keep only the first ``n_train`` training rows (all test rows are kept).
    download : bool, default=True
        Download missing MNIST files (about 11 MB). False never touches the network.
    announce : callable, optional
        Called with one line of text before a download starts.

    Returns
    -------
    data : BenchData
    """
    directory = get_data_home(data_home)
    present = mnist_available(data_home)
    if download and not present and announce is not None:
        announce(f"Downloading MNIST (about 11 MB) into {directory} ...")
    try:
        X_train, y_train = load_mnist("train", data_home, dtype, download=download,
                                      timeout=DOWNLOAD_TIMEOUT)
        X_test, y_test = load_mnist("test", data_home, dtype, download=download,
                                    timeout=DOWNLOAD_TIMEOUT)
        source = f"{'found in' if present else 'downloaded into'} {directory}"
        data = BenchData("MNIST", X_train, y_train, X_test, y_test, source=source)
    except MNISTError as exc:
        data = load_digits_data(dtype)
        data.notice = _fallback_notice(exc, download)
    if n_train is not None and n_train < data.X_train.shape[0]:
        data.n_available = data.X_train.shape[0]
        data.X_train, data.y_train = data.X_train[:n_train], data.y_train[:n_train]
    return data
