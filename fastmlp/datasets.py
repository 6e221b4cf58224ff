"""MNIST loader: find, download, verify and parse the four IDX files.

The files are looked up in ``data_home`` if given, else in the directory named
by the ``FASTMLP_DATA`` environment variable, else in a per-user cache
directory (see :func:`get_data_home`). Missing files are downloaded from
:data:`MIRRORS`; every file is checked against the official MD5 before use.
"""

import gzip
import hashlib
import http.client
import os
import sys
import tempfile
import urllib.request
import zlib
from pathlib import Path

import numpy as np
from tqdm import tqdm

__all__ = [
    "MIRRORS",
    "MNISTError",
    "MNISTDownloadError",
    "get_data_home",
    "mnist_available",
    "load_mnist",
]

#: Base URLs tried in order for missing files. Plain HTTP is acceptable
#: because every download is checked against the official MD5 before use.
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)

# split -> (images file, labels file, number of samples)
_SPLITS = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", 60000),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", 10000),
}
_FILENAMES = tuple(name for images, labels, _ in _SPLITS.values() for name in (images, labels))

# Official MD5 of each compressed file.
_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}

_IMAGES_MAGIC = 2051  # 0x0803: unsigned bytes, 3 dimensions
_LABELS_MAGIC = 2049  # 0x0801: unsigned bytes, 1 dimension
_CHUNK = 1 << 16


class MNISTError(ValueError):
    """An MNIST file is corrupt, truncated or not a valid IDX file.

    The message names the file, says what is wrong and what to do about it.
    Also the base class of :class:`MNISTDownloadError`, so
    ``except MNISTError`` catches every "MNIST is not usable" failure.
    """


class MNISTDownloadError(MNISTError, OSError):
    """MNIST files are missing and could not be downloaded.

    Raised when every mirror failed, or when files are missing and
    ``download=False``. The message lists what was tried and where to put
    the files by hand. It is both an :class:`MNISTError` and an
    :class:`OSError`.
    """


def _user_cache_dir():
    """Per-user cache directory for MNIST, following platform conventions."""
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local"
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        # The XDG spec says to ignore relative paths.
        xdg = os.environ.get("XDG_CACHE_HOME", "")
        base = xdg if os.path.isabs(xdg) else Path.home() / ".cache"
    return Path(base) / "fastmlp" / "mnist"


def get_data_home(data_home=None):
    """Return the directory where the MNIST files are looked up.

    Parameters
    ----------
    data_home : str or os.PathLike, optional
        Explicit directory; wins over everything else.

    Returns
    -------
    path : pathlib.Path
        ``data_home`` if given, else ``$FASTMLP_DATA`` if set and non-empty,
        else the per-user cache directory (``$XDG_CACHE_HOME/fastmlp/mnist``
        or ``~/.cache/fastmlp/mnist`` on Linux,
        ``~/Library/Caches/fastmlp/mnist`` on macOS,
        ``%LOCALAPPDATA%\\fastmlp\\mnist`` on Windows). The directory is not
        created.
    """
    if data_home is not None:
        return Path(data_home).expanduser()
    env = os.environ.get("FASTMLP_DATA")
    if env:
        return Path(env).expanduser()
    return _user_cache_dir()


def mnist_available(data_home=None):
    """Tell whether the four MNIST files are present.

    Only presence is checked (no hashing), so this is cheap; a corrupt file
    is still reported by :func:`load_mnist`.

    Parameters
    ----------
    data_home : str or os.PathLike, optional
        Directory to look in, resolved as in :func:`get_data_home`.

    Returns
    -------
    available : bool
        True when all four ``*-ubyte.gz`` files exist in that directory.
    """
    directory = get_data_home(data_home)
    return all((directory / name).is_file() for name in _FILENAMES)


def _fix_hint(path):
    return (
        f"Delete {path} so that it is downloaded again, or point FASTMLP_DATA "
        "(or data_home=) at a directory holding good copies."
    )


def _manual_hint(directory):
    names = ", ".join(_FILENAMES)
    return (
        f"Download the MNIST files by hand ({names}) and put them in {directory}, "
        "or set the FASTMLP_DATA environment variable (or pass data_home=) to a "
        "directory that holds them."
    )


def _check_md5(path, md5):
    expected = _MD5[path.name]
    if md5 != expected:
        raise MNISTError(
            f"{path}: MD5 mismatch: expected {expected}, got {md5} "
            f"({path.stat().st_size} bytes); the file is corrupt or truncated. "
            + _fix_hint(path)
        )


def _read_idx(path, magic, shape):
    """Read one gzipped IDX file, verify it, and return its uint8 payload."""
    raw = path.read_bytes()
    # Hash the bytes already in memory rather than reading the file twice.
    _check_md5(path, hashlib.md5(raw).hexdigest())

    def bad(what):
        return MNISTError(f"{path}: {what}. " + _fix_hint(path))

    try:
        data = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise bad(f"not a valid gzip file ({exc})") from exc
    header_len = 4 * (1 + len(shape))
    if len(data) < header_len:
        raise bad(f"IDX header truncated ({len(data)} bytes)")
    header = np.frombuffer(data, dtype=">u4", count=1 + len(shape))
    if header[0] != magic:
        raise bad(f"bad IDX magic number {header[0]}, expected {magic}")
    if tuple(header[1:]) != shape:
        raise bad(f"bad IDX dimensions {tuple(map(int, header[1:]))}, expected {shape}")
    expected = int(np.prod(shape))
    if len(data) - header_len != expected:
        raise bad(f"IDX payload is {len(data) - header_len} bytes, expected {expected}")
    return np.frombuffer(data, dtype=np.uint8, offset=header_len).reshape(shape)


def _fetch(url, target, timeout):
    """Download ``url`` to ``target`` via a temporary file, checking the MD5."""
    tmp = tempfile.NamedTemporaryFile(
        delete=False, dir=target.parent, prefix=f".{target.name}.", suffix=".part"
    )
    try:
        md5 = hashlib.md5()
        received = 0
        request = urllib.request.Request(url, headers={"User-Agent": "fastmlp"})
        with tmp, urllib.request.urlopen(request, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            length = int(length) if length and length.isdigit() else None
            # disable=None: no progress bar when stderr is not a terminal.
            with tqdm(total=length, unit="B", unit_scale=True, unit_divisor=1024,
                      desc=target.name, disable=None, leave=False) as bar:
                while chunk := response.read(_CHUNK):
                    tmp.write(chunk)
                    md5.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
        # http.client returns a short body silently when the peer hangs up.
        if length is not None and received != length:
            raise MNISTError(f"connection closed after {received} of {length} bytes")
        digest, expected = md5.hexdigest(), _MD5[target.name]
        if digest != expected:
            raise MNISTError(f"MD5 mismatch: expected {expected}, got {digest}")
        os.replace(tmp.name, target)
    except BaseException:
        # Includes KeyboardInterrupt: never leave partial files behind.
        try:
            os.unlink(tmp.name)
        except OSError:
            pass
        raise


def _download(name, directory, mirrors, timeout):
    """Fetch one file, trying each mirror in turn."""
    directory.mkdir(parents=True, exist_ok=True)
    failures = []
    for base in mirrors:
        url = base.rstrip("/") + "/" + name
        try:
            _fetch(url, directory / name, timeout)
            return
        except (OSError, ValueError, http.client.HTTPException) as exc:
            failures.append(f"  {url}: {exc}")
    tried = "\n".join(failures) if failures else "  (no mirrors given)"
    raise MNISTDownloadError(
        f"Could not download {name} into {directory}. Tried:\n{tried}\n"
        + _manual_hint(directory)
    )


def load_mnist(split="train", data_home=None, dtype=np.float32, *,
               download=True, mirrors=None, timeout=30):
    """Load the MNIST training or test set, downloading it if needed.

    Parameters
    ----------
    split : {"train", "test"}, default="train"
        The 60000-image training set or the 10000-image test set.
    data_home : str or os.PathLike, optional
        Directory holding the files; see :func:`get_data_home` for the
        fallbacks (``$FASTMLP_DATA``, then a per-user cache directory).
    dtype : {numpy.float32, numpy.float64}, default=numpy.float32
        Floating-point type of ``X``.
    download : bool, default=True
        Download missing files from ``mirrors``. When False, missing files
        raise :class:`MNISTDownloadError` without any network access.
    mirrors : sequence of str, optional
        Base URLs tried in order; the file name is appended to each.
        Defaults to the module-level :data:`MIRRORS` (read at call time).
    timeout : float, default=30
        Seconds a mirror may take to connect or to send the next bytes before
        the next mirror is tried.

    Returns
    -------
    X : ndarray of shape (n_samples, 784)
        C-contiguous pixel values scaled to [0, 1], of type ``dtype``.
    y : ndarray of shape (n_samples,), dtype int64
        Digit labels 0..9.

    Raises
    ------
    ValueError
        For an unknown ``split`` or unsupported ``dtype``.
    MNISTError
        When a file is corrupt: wrong MD5, bad gzip stream or bad IDX header.
    MNISTDownloadError
        When files are missing and could not be (or must not be) downloaded.
        Subclass of both :class:`MNISTError` and :class:`OSError`.
    """
    if split not in _SPLITS:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        dtype = None
    if dtype not in (np.float32, np.float64):
        raise ValueError("dtype must be numpy.float32 or numpy.float64")

    if mirrors is None:
        mirrors = MIRRORS
    elif isinstance(mirrors, str):  # a lone URL, not a sequence of characters
        mirrors = (mirrors,)
    directory = get_data_home(data_home)
    images_name, labels_name, n = _SPLITS[split]
    for name in (images_name, labels_name):
        if not (directory / name).is_file():
            if not download:
                raise MNISTDownloadError(
                    f"MNIST file {name} not found in {directory} and download=False. "
                    + _manual_hint(directory)
                )
            _download(name, directory, mirrors, timeout)

    images = _read_idx(directory / images_name, _IMAGES_MAGIC, (n, 28, 28))
    labels = _read_idx(directory / labels_name, _LABELS_MAGIC, (n,))
    # One copy: astype allocates the result, the division is in place.
    X = images.reshape(n, 28 * 28).astype(dtype)
    X /= 255
    return X, labels.astype(np.int64)
