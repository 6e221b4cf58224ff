"""Tests for fastmlp.datasets: lookup, verification, parsing and download.

Tests that need the real MNIST files read them from the directory in the
FASTMLP_DATA environment variable and skip when it is unset or incomplete.
Downloads only ever go to HTTP servers started here on 127.0.0.1.
"""

import gzip
import hashlib
import http.server
import os
import shutil
import sys
import threading
import urllib.parse
import urllib.request
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from fastmlp import datasets
from fastmlp.datasets import (
    MNISTDownloadError,
    MNISTError,
    get_data_home,
    load_mnist,
    mnist_available,
)

NAMES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
ALL_NAMES = NAMES["train"] + NAMES["test"]
TEST_IMAGES, TEST_LABELS = NAMES["test"]

# Class counts, first labels and a pixel row, read from the official files.
CLASS_COUNTS = {
    "train": [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949],
    "test": [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009],
}
FIRST_LABELS = {
    "train": [5, 0, 4, 1, 9, 2, 1, 3, 1, 4],
    "test": [7, 2, 1, 0, 4, 1, 4, 9, 5, 9],
}
TRAIN0_PIXELS_152_160 = [3, 18, 18, 18, 126, 136, 175, 26]


def real_data_dir():
    """The directory with the real MNIST files, or None if unavailable."""
    path = os.environ.get("FASTMLP_DATA")
    if path and all((Path(path) / name).is_file() for name in ALL_NAMES):
        return Path(path)
    return None


REAL_DIR = real_data_dir()
SKIP_REASON = (
    "real MNIST files not available: set FASTMLP_DATA to a directory "
    "holding the four *-ubyte.gz files"
)
needs_real = pytest.mark.skipif(REAL_DIR is None, reason=SKIP_REASON)


@pytest.fixture(autouse=True)
def no_internet(monkeypatch):
    """Fail loudly if anything tries to reach a host other than 127.0.0.1."""
    real_urlopen = urllib.request.urlopen

    def guarded(request, *args, **kwargs):
        url = request.full_url if isinstance(request, urllib.request.Request) else request
        host = urllib.parse.urlsplit(url).hostname
        assert host == "127.0.0.1", f"test tried to reach the network: {url}"
        return real_urlopen(request, *args, **kwargs)

    monkeypatch.setattr(urllib.request, "urlopen", guarded)


def populate(directory, names=ALL_NAMES, copy=False):
    """Link (or copy, when the test modifies them) real files into directory."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in names:
        if copy:
            shutil.copyfile(REAL_DIR / name, directory / name)
        else:
            os.symlink(REAL_DIR / name, directory / name)
    return directory


def md5(path):
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


def flip_byte(path, offset=None):
    data = bytearray(Path(path).read_bytes())
    offset = len(data) // 2 if offset is None else offset
    data[offset] ^= 0xFF
    Path(path).write_bytes(bytes(data))


def assert_fix_hint(message, path):
    assert str(path) in message
    assert "Delete" in message and "FASTMLP_DATA" in message


# --------------------------------------------------------------------------
# Argument validation and lookup (no real files needed)


@pytest.mark.parametrize("dtype", [np.int32, np.uint8, np.float16, "complex128", "nonsense"])
def test_rejects_unsupported_dtype(dtype, tmp_path):
    with pytest.raises(ValueError, match="float32 or numpy.float64"):
        load_mnist("test", data_home=tmp_path, dtype=dtype, download=False)


def test_rejects_unknown_split(tmp_path):
    with pytest.raises(ValueError, match="'train' or 'test'"):
        load_mnist("validation", data_home=tmp_path, download=False)


def test_exception_hierarchy():
    assert issubclass(MNISTError, ValueError)
    assert issubclass(MNISTDownloadError, MNISTError)
    assert issubclass(MNISTDownloadError, OSError)


def test_get_data_home_order(monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("FASTMLP_DATA", str(tmp_path / "env"))
    assert get_data_home(tmp_path / "explicit") == tmp_path / "explicit"
    assert get_data_home(str(tmp_path / "explicit")) == tmp_path / "explicit"
    assert get_data_home() == tmp_path / "env"
    monkeypatch.setenv("FASTMLP_DATA", "")  # empty counts as unset
    assert get_data_home() == tmp_path / "xdg" / "fastmlp" / "mnist"
    monkeypatch.delenv("FASTMLP_DATA")
    assert get_data_home() == tmp_path / "xdg" / "fastmlp" / "mnist"
    assert not (tmp_path / "xdg").exists()  # resolving never creates it


@pytest.mark.parametrize(
    "platform, env, expected",
    [
        ("linux", {}, "home/.cache/fastmlp/mnist"),
        ("linux", {"XDG_CACHE_HOME": "relative/ignored"}, "home/.cache/fastmlp/mnist"),
        ("darwin", {}, "home/Library/Caches/fastmlp/mnist"),
        ("win32", {"LOCALAPPDATA": "{tmp}/local"}, "local/fastmlp/mnist"),
        ("win32", {}, "home/AppData/Local/fastmlp/mnist"),
    ],
)
def test_cache_dir_per_platform(monkeypatch, tmp_path, platform, env, expected):
    for var in ("FASTMLP_DATA", "XDG_CACHE_HOME", "LOCALAPPDATA"):
        monkeypatch.delenv(var, raising=False)
    for var, value in env.items():
        monkeypatch.setenv(var, value.format(tmp=tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(sys, "platform", platform)
    assert get_data_home() == tmp_path / expected


def test_mnist_available(tmp_path):
    assert not mnist_available(tmp_path)
    assert not mnist_available(tmp_path / "does-not-exist")
    for name in ALL_NAMES[:3]:
        (tmp_path / name).write_bytes(b"")
    assert not mnist_available(tmp_path)
    (tmp_path / ALL_NAMES[3]).write_bytes(b"")
    assert mnist_available(tmp_path)  # presence only; load_mnist verifies


def test_download_false_missing_files(monkeypatch, tmp_path):
    def no_network(*args, **kwargs):
        raise AssertionError("network used with download=False")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    target = tmp_path / "empty"
    with pytest.raises(MNISTDownloadError) as info:
        load_mnist("train", data_home=target, download=False)
    message = str(info.value)
    assert str(target) in message and "download=False" in message
    for name in ALL_NAMES:
        assert name in message
    assert "FASTMLP_DATA" in message
    assert not target.exists()


# --------------------------------------------------------------------------
# Real files


@needs_real
@pytest.mark.parametrize("split, n", [("train", 60000), ("test", 10000)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_load_real(split, n, dtype):
    X, y = load_mnist(split, data_home=REAL_DIR, dtype=dtype)
    assert X.shape == (n, 784) and X.dtype == dtype and X.flags.c_contiguous
    assert y.shape == (n,) and y.dtype == np.int64
    assert X.min() == 0.0 and X.max() == 1.0
    assert np.bincount(y, minlength=10).tolist() == CLASS_COUNTS[split]
    assert y[:10].tolist() == FIRST_LABELS[split]
    if split == "train":
        np.testing.assert_array_equal(
            X[0, 152:160], np.array(TRAIN0_PIXELS_152_160, dtype=dtype) / dtype(255)
        )


@needs_real
def test_default_lookup_uses_env(monkeypatch):
    monkeypatch.setenv("FASTMLP_DATA", str(REAL_DIR))
    assert get_data_home() == REAL_DIR
    assert mnist_available()
    X, y = load_mnist("test", download=False)
    assert X.shape == (10000, 784)


@needs_real
def test_lookup_order(monkeypatch, tmp_path):
    explicit = populate(tmp_path / "explicit", NAMES["test"])
    env = populate(tmp_path / "env", NAMES["test"], copy=True)
    flip_byte(env / TEST_IMAGES)  # a load from here would fail, naming env
    cache = populate(tmp_path / "xdg" / "fastmlp" / "mnist", NAMES["test"])
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("FASTMLP_DATA", str(env))

    # data_home beats FASTMLP_DATA.
    X, _ = load_mnist("test", data_home=explicit, download=False)
    assert X.shape == (10000, 784)
    # FASTMLP_DATA beats the cache directory.
    with pytest.raises(MNISTError, match="MD5 mismatch") as info:
        load_mnist("test", download=False)
    assert str(env / TEST_IMAGES) in str(info.value)
    # Without either, the cache directory is used.
    monkeypatch.delenv("FASTMLP_DATA")
    assert get_data_home() == cache
    X, _ = load_mnist("test", download=False)
    assert X.shape == (10000, 784)


@needs_real
@pytest.mark.parametrize("name", [TEST_IMAGES, TEST_LABELS])
def test_flipped_byte_is_md5_error(tmp_path, name):
    populate(tmp_path, NAMES["test"], copy=True)
    flip_byte(tmp_path / name)
    with pytest.raises(MNISTError) as info:
        load_mnist("test", data_home=tmp_path)
    message = str(info.value)
    assert "MD5 mismatch" in message and datasets._MD5[name] in message
    assert_fix_hint(message, tmp_path / name)


@needs_real
def test_truncated_file(tmp_path, monkeypatch):
    populate(tmp_path, NAMES["test"], copy=True)
    path = tmp_path / TEST_IMAGES
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(MNISTError, match="MD5 mismatch.*corrupt or truncated") as info:
        load_mnist("test", data_home=tmp_path)
    assert_fix_hint(str(info.value), path)
    # Past the MD5 check, the broken gzip stream is still reported clearly.
    monkeypatch.setitem(datasets._MD5, TEST_IMAGES, md5(path))
    with pytest.raises(MNISTError, match="not a valid gzip file") as info:
        load_mnist("test", data_home=tmp_path)
    assert_fix_hint(str(info.value), path)


def _rewrite_idx(path, header_edit=None, payload_edit=None):
    """Recompress an IDX file after editing its big-endian uint32 header."""
    data = gzip.decompress(path.read_bytes())
    n_fields = 4 if "idx3" in path.name else 2
    header = np.frombuffer(data, ">u4", count=n_fields).copy()
    payload = data[4 * n_fields:]
    if header_edit:
        header_edit(header)
    if payload_edit:
        payload = payload_edit(payload)
    path.write_bytes(gzip.compress(header.tobytes() + payload, compresslevel=1))


@needs_real
@pytest.mark.parametrize(
    "name, header_edit, payload_edit, expected",
    [
        (TEST_IMAGES, lambda h: h.__setitem__(0, 2049), None, "bad IDX magic number 2049, expected 2051"),
        (TEST_LABELS, lambda h: h.__setitem__(0, 2051), None, "bad IDX magic number 2051, expected 2049"),
        (TEST_IMAGES, lambda h: h.__setitem__(2, 27), None, r"bad IDX dimensions \(10000, 27, 28\)"),
        (TEST_LABELS, lambda h: h.__setitem__(1, 9999), None, r"bad IDX dimensions \(9999,\), expected \(10000,\)"),
        (TEST_LABELS, None, lambda p: p + b"\0", "payload is 10001 bytes, expected 10000"),
        (TEST_IMAGES, None, lambda p: p[:-28], "payload is 7839972 bytes, expected 7840000"),
    ],
)
def test_bad_idx_header(tmp_path, monkeypatch, name, header_edit, payload_edit, expected):
    populate(tmp_path, NAMES["test"], copy=True)
    path = tmp_path / name
    _rewrite_idx(path, header_edit, payload_edit)
    monkeypatch.setitem(datasets._MD5, name, md5(path))  # get past the MD5 check
    with pytest.raises(MNISTError, match=expected) as info:
        load_mnist("test", data_home=tmp_path)
    assert_fix_hint(str(info.value), path)


# --------------------------------------------------------------------------
# Downloads from local HTTP servers


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class _HangUpHandler(http.server.BaseHTTPRequestHandler):
    """Announces the full file, sends half of it, then drops the connection."""

    directory = None

    def do_GET(self):
        data = (Path(self.directory) / Path(self.path).name).read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[: len(data) // 2])
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture
def serve():
    """Start HTTP servers on 127.0.0.1; ``serve(dir, handler=None) -> base URL``."""
    running = []

    def start(directory, handler=None):
        if handler is None:
            handler = partial(_QuietHandler, directory=str(directory))
        else:
            handler = type("Handler", (handler,), {"directory": str(directory)})
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
        thread.start()
        running.append((server, thread))
        return f"http://127.0.0.1:{server.server_address[1]}/"

    yield start
    for server, thread in running:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def good_files(tmp_path):
    """A directory holding copies of the four real files."""
    if REAL_DIR is None:
        pytest.skip(SKIP_REASON)
    return populate(tmp_path / "good", copy=True)


@pytest.fixture
def bad_files(tmp_path, good_files):
    """A directory holding the four files, each with one byte flipped."""
    bad = tmp_path / "bad"
    shutil.copytree(good_files, bad)
    for name in ALL_NAMES:
        flip_byte(bad / name)
    return bad


def test_download_good(tmp_path, serve, good_files):
    url = serve(good_files)
    home = tmp_path / "home" / "nested"  # created on demand
    X, y = load_mnist("test", data_home=home, mirrors=(url,))
    assert X.shape == (10000, 784) and np.bincount(y).tolist() == CLASS_COUNTS["test"]
    assert sorted(p.name for p in home.iterdir()) == sorted(NAMES["test"])
    X, y = load_mnist("train", data_home=home, mirrors=url)  # a lone URL string works too
    assert X.shape == (60000, 784) and np.bincount(y).tolist() == CLASS_COUNTS["train"]
    assert sorted(p.name for p in home.iterdir()) == sorted(ALL_NAMES)
    for name in ALL_NAMES:
        assert md5(home / name) == datasets._MD5[name]
    assert mnist_available(home)


def test_download_uses_module_mirrors(tmp_path, serve, good_files, monkeypatch):
    monkeypatch.setattr(datasets, "MIRRORS", (serve(good_files),))
    X, _ = load_mnist("test", data_home=tmp_path / "home")
    assert X.shape == (10000, 784)


def test_download_skips_missing_and_corrupt_mirrors(tmp_path, serve, good_files, bad_files):
    root = tmp_path / "root"
    root.mkdir()
    (root / "good").symlink_to(good_files)
    (root / "bad").symlink_to(bad_files)
    (root / "empty").mkdir()
    url = serve(root)
    home = tmp_path / "home"
    mirrors = (url + "empty/", url + "bad/", url + "good")  # trailing slash optional
    X, _ = load_mnist("test", data_home=home, mirrors=mirrors)
    assert X.shape == (10000, 784)
    assert sorted(p.name for p in home.iterdir()) == sorted(NAMES["test"])


def test_download_only_corrupt_mirrors(tmp_path, serve, bad_files):
    mirrors = (serve(bad_files), serve(bad_files))
    home = tmp_path / "home"
    with pytest.raises(MNISTDownloadError) as info:
        load_mnist("test", data_home=home, mirrors=mirrors)
    message = str(info.value)
    assert "Could not download" in message and TEST_IMAGES in message
    for mirror in mirrors:
        assert f"{mirror}{TEST_IMAGES}: MD5 mismatch" in message
    assert str(home) in message and "FASTMLP_DATA" in message
    for name in ALL_NAMES:
        assert name in message  # tells which files to put there by hand
    assert list(home.iterdir()) == []


def test_download_interrupted(tmp_path, serve, good_files):
    url = serve(good_files, handler=_HangUpHandler)
    home = tmp_path / "home"
    with pytest.raises(MNISTDownloadError, match="connection closed after") as info:
        load_mnist("test", data_home=home, mirrors=(url,))
    assert str(home) in str(info.value)
    assert list(home.iterdir()) == []


def test_download_keyboard_interrupt_cleans_up(tmp_path, serve, good_files, monkeypatch):
    class InterruptingBar(datasets.tqdm):
        def update(self, n=1):
            raise KeyboardInterrupt

    monkeypatch.setattr(datasets, "tqdm", InterruptingBar)
    home = tmp_path / "home"
    with pytest.raises(KeyboardInterrupt):
        load_mnist("test", data_home=home, mirrors=(serve(good_files),))
    assert list(home.iterdir()) == []


def test_download_no_mirrors(tmp_path):
    with pytest.raises(MNISTDownloadError, match="no mirrors given"):
        load_mnist("test", data_home=tmp_path, mirrors=())
