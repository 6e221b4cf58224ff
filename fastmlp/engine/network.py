"""Network description shared by both backends: layer sizes, the flat parameter
buffer's layout, and the integer codes the compiled kernels use."""

import numpy as np

from fastmlp.kernels.codes import ACTIVATIONS, HIDDEN_ACTIVATIONS, LOSSES

OUTPUT_ACTIVATION = {
    "log_loss": "softmax",
    "binary_log_loss": "logistic",
    "squared_error": "identity",
    "poisson": "exp",
    "sigmoid_squared_error": "logistic",
}


class Network:
    """Shape, activations and loss of a multi-layer perceptron.

    Parameters are stored in one flat buffer, all weight matrices first (each
    C-ordered, shape ``(fan_in, fan_out)``) then all bias vectors: the order of
    scikit-learn's ``_pack``. One buffer means one pass of the optimizer over
    memory and one compiled signature for any depth.

    Parameters
    ----------
    layer_units : sequence of int
        Units per layer, input first and output last.
    activation : {'identity', 'logistic', 'tanh', 'relu'}
        Hidden-layer activation.
    loss : str
        One of :data:`LOSSES`; it fixes the output activation.
    """

    def __init__(self, layer_units, activation, loss):
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}.")
        if activation not in HIDDEN_ACTIVATIONS:
            raise ValueError(
                f"activation must be one of {HIDDEN_ACTIVATIONS}, got {activation!r}.")
        self.layer_units = tuple(int(u) for u in layer_units)
        #: The same widths as an int64 array, the form the kernels take.
        self.units = np.asarray(self.layer_units, dtype=np.int64)
        self.activation = activation
        self.loss = loss
        self.out_activation = OUTPUT_ACTIVATION[loss]
        sizes = [a * b for a, b in zip(self.layer_units[:-1], self.layer_units[1:])]
        sizes += list(self.layer_units[1:])
        offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        n = self.n_weight_layers
        self.coef_offsets = offsets[: n + 1]
        self.intercept_offsets = offsets[n:]
        self.n_params = int(offsets[-1])

    @property
    def n_weight_layers(self):
        """Number of weight matrices (layers minus one)."""
        return len(self.layer_units) - 1

    @property
    def codes(self):
        """Integer codes ``(hidden activation, output activation, loss)`` for the kernels."""
        return (
            ACTIVATIONS.index(self.activation),
            ACTIVATIONS.index(self.out_activation),
            LOSSES.index(self.loss),
        )

    def views(self, flat):
        """Split a flat parameter buffer into per-layer views.

        Parameters
        ----------
        flat : ndarray of shape (n_params,)
            Parameter buffer.

        Returns
        -------
        coefs, intercepts : list of ndarray
            Views into ``flat`` (writing to them writes to ``flat``).
        """
        coefs, intercepts = [], []
        for i in range(self.n_weight_layers):
            shape = self.layer_units[i], self.layer_units[i + 1]
            c0, c1 = self.coef_offsets[i], self.coef_offsets[i + 1]
            b0, b1 = self.intercept_offsets[i], self.intercept_offsets[i + 1]
            coefs.append(flat[c0:c1].reshape(shape))
            intercepts.append(flat[b0:b1])
        return coefs, intercepts

    def pack(self, coefs, intercepts, dtype):
        """Copy per-layer parameters into a new flat buffer.

        Parameters
        ----------
        coefs, intercepts : list of array-like
            Weights ``(fan_in, fan_out)`` and biases ``(fan_out,)`` per layer.
        dtype : numpy dtype
            Dtype of the buffer.

        Returns
        -------
        flat : ndarray of shape (n_params,)
        """
        flat = np.empty(self.n_params, dtype=dtype)
        cv, iv = self.views(flat)
        for dst, src in zip(cv + iv, list(coefs) + list(intercepts)):
            src = np.asarray(src)
            if src.shape != dst.shape:
                raise ValueError(
                    f"Parameter of shape {src.shape} does not fit a layer of shape "
                    f"{dst.shape}; coefs_/intercepts_ must match hidden_layer_sizes."
                )
            dst[...] = src
        return flat
