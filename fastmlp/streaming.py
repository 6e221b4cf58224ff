"""Out-of-core training: ``partial_fit`` over chunks that are loaded one at a time.

Only one chunk of rows is in memory at once, so data sets larger than memory
(a chunked Dask array backed by files, or any generator of ``(X, y)`` pairs)
can be trained on. Each chunk gets one ``partial_fit`` call, that is one
epoch over its rows (shuffled within the chunk if ``shuffle=True``).
"""

import numpy as np
from sklearn.base import is_classifier

__all__ = ["iter_chunks", "partial_fit_chunks"]


def _is_dask_array(a):
    return hasattr(a, "dask") and hasattr(a, "chunks") and hasattr(a, "blocks")


def _to_numpy(a):
    return np.asarray(a.compute() if hasattr(a, "compute") else a)


def iter_chunks(X, y=None):
    """Yield the row blocks of a data set as NumPy ``(X, y)`` pairs, one at a time.

    Parameters
    ----------
    X : dask.array.Array or iterable of (X_chunk, y_chunk)
        A Dask array of shape (n_samples, n_features), whose row blocks are the
        chunks; or, when ``y`` is None, an iterable of ``(X_chunk, y_chunk)``
        pairs (NumPy arrays, Dask arrays or anything with ``compute()``).
    y : dask.array.Array or array-like of shape (n_samples,) or (n_samples, n_outputs), optional
        Targets of a Dask ``X``. A Dask ``y`` is rechunked to the row blocks
        of ``X`` if they differ; an in-memory ``y`` is sliced to match them.

    Yields
    ------
    X_chunk : ndarray of shape (n_chunk_rows, n_features)
    y_chunk : ndarray of shape (n_chunk_rows,) or (n_chunk_rows, n_outputs)

    Raises
    ------
    TypeError
        If ``y`` is given but ``X`` is not a Dask array.
    ValueError
        If ``X`` and ``y`` have different numbers of rows.
    """
    if y is None:
        for X_chunk, y_chunk in X:
            yield _to_numpy(X_chunk), _to_numpy(y_chunk)
        return
    if not _is_dask_array(X):
        raise TypeError(
            "With y given, X must be a dask array (its row blocks are the chunks); "
            f"got {type(X).__name__}. Pass in-memory data as an iterable of (X, y) pairs.")
    if X.shape[0] != y.shape[0]:
        raise ValueError(f"X has {X.shape[0]} rows but y has {y.shape[0]}.")
    import dask

    if X.ndim == 2 and X.numblocks[1] > 1:
        X = X.rechunk({1: -1})  # one block per slab of rows
    row_chunks = X.chunks[0]
    if _is_dask_array(y) and y.chunks[0] != row_chunks:
        y = y.rechunk({0: row_chunks})
    stops = np.cumsum(row_chunks)
    for i, stop in enumerate(stops):
        start = stop - row_chunks[i]
        y_chunk = y.blocks[i] if _is_dask_array(y) else y[start:stop]
        # Computed together so a graph shared by X and y is evaluated once.
        X_chunk, y_chunk = dask.compute(X.blocks[i], y_chunk)
        yield np.asarray(X_chunk), np.asarray(y_chunk)


def partial_fit_chunks(estimator, X, y=None, *, classes=None, epochs=1):
    """Train an estimator with one ``partial_fit`` call per chunk of rows.

    Parameters
    ----------
    estimator : estimator with ``partial_fit``
        E.g. :class:`fastmlp.FastMLPClassifier` with ``solver='sgd'`` or ``'adam'``.
        Trained in place; an already fitted estimator continues training.
    X : dask.array.Array or iterable of (X_chunk, y_chunk)
        The data, chunked as described in :func:`iter_chunks`. For
        ``epochs > 1`` an iterable of pairs must be re-iterable (a list, not a
        generator).
    y : dask.array.Array or array-like, optional
        Targets when ``X`` is a Dask array.
    classes : array-like of shape (n_classes,), optional
        All class labels, needed by a classifier's first ``partial_fit``. If
        None and ``y`` is given, they are ``np.unique(y)`` (which reads ``y``
        once); if None and ``X`` is an iterable of pairs, an unfitted
        classifier raises ``ValueError``.
    epochs : int, default=1
        Passes over the chunks.

    Returns
    -------
    estimator
        The trained estimator.

    Raises
    ------
    ValueError
        If ``epochs < 1``, if a single-use iterator is given with
        ``epochs > 1``, or if a classifier's classes are unknown.

    Notes
    -----
    Feeding the same chunks in the same order gives exactly the model that
    ``partial_fit`` on the corresponding in-memory arrays gives: each chunk is
    converted to NumPy and passed on unchanged.

    Examples
    --------
    >>> import numpy as np
    >>> from fastmlp import FastMLPClassifier, partial_fit_chunks
    >>> rng = np.random.default_rng(0)
    >>> X = rng.random((300, 4))
    >>> y = (X[:, 0] > 0.5).astype(int)
    >>> chunks = [(X[i:i + 100], y[i:i + 100]) for i in range(0, 300, 100)]
    >>> clf = FastMLPClassifier((8,), solver="sgd", random_state=0)
    >>> clf = partial_fit_chunks(clf, chunks, classes=[0, 1], epochs=2)
    >>> clf.n_features_in_
    4
    """
    epochs = int(epochs)
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}.")
    if y is None and epochs > 1 and iter(X) is X:
        raise ValueError("epochs > 1 needs a re-iterable collection of chunks (e.g. a list), "
                         "not a single-use iterator or generator.")
    kwargs = {}
    if is_classifier(estimator):
        if classes is None and y is not None and not hasattr(estimator, "classes_"):
            classes = np.unique(_to_numpy(y))
        if classes is None and not hasattr(estimator, "classes_"):
            raise ValueError("classes must be given for the first partial_fit of a classifier "
                             "when the chunks are an iterable of (X, y) pairs.")
        if classes is not None:
            kwargs["classes"] = classes
    for _ in range(epochs):
        for X_chunk, y_chunk in iter_chunks(X, y):
            estimator.partial_fit(X_chunk, y_chunk, **kwargs)
    return estimator
