"""Stochastic optimizers with scikit-learn's exact update rules and schedules.

The state lives in flat buffers laid out like the parameter buffer, so the
compiled kernels update parameters and state in one pass; :meth:`step` is the
plain NumPy form of the same rule, used by the reference backend.
"""

import numpy as np

from fastmlp.kernels import codes


class SGD:
    """Stochastic gradient descent with momentum, as scikit-learn's ``SGDOptimizer``.

    ``v <- momentum * v - lr * g``; then ``w <- w + v``, or with Nesterov's
    momentum ``w <- w + momentum * v - lr * g``.

    Parameters
    ----------
    n_params : int
        Length of the flat parameter buffer.
    dtype : numpy dtype
        Dtype of the parameters.
    learning_rate_init : float
        Initial learning rate.
    lr_schedule : {'constant', 'invscaling', 'adaptive'}
        Learning-rate schedule.
    momentum : float
        Momentum in [0, 1].
    nesterov : bool
        Whether to use Nesterov's momentum.
    power_t : float
        Exponent of the ``invscaling`` schedule.
    """

    kind = codes.SGD

    def __init__(self, n_params, dtype, learning_rate_init=0.1, lr_schedule="constant",
                 momentum=0.9, nesterov=True, power_t=0.5):
        self.learning_rate_init = float(learning_rate_init)
        self.learning_rate = float(learning_rate_init)
        self.lr_schedule = lr_schedule
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)
        self.power_t = float(power_t)
        self.velocity = np.zeros(n_params, dtype=dtype)

    def step(self, params, grad):
        """Apply one update in place.

        Parameters
        ----------
        params : ndarray of shape (n_params,)
            Flat parameters, updated in place.
        grad : ndarray of shape (n_params,)
            Gradient of the mini-batch loss.
        """
        self.velocity[...] = self.momentum * self.velocity - self.learning_rate * grad
        if self.nesterov:
            params += self.momentum * self.velocity - self.learning_rate * grad
        else:
            params += self.velocity

    def iteration_ends(self, time_step):
        """Update the learning rate at the end of an epoch.

        Parameters
        ----------
        time_step : int
            Number of training samples seen so far (the estimator's ``t_``).
        """
        if self.lr_schedule == "invscaling":
            self.learning_rate = self.learning_rate_init / (time_step + 1) ** self.power_t

    def trigger_stopping(self, msg, verbose):
        """Decide whether to stop when the loss stopped improving.

        Parameters
        ----------
        msg : str
            Why training stalled, printed when ``verbose``.
        verbose : bool
            Whether to print.

        Returns
        -------
        is_stopping : bool
            True to stop; the ``adaptive`` schedule instead divides the
            learning rate by 5 until it falls below 1e-6.
        """
        if self.lr_schedule != "adaptive":
            if verbose:
                print(msg + " Stopping.")
            return True
        if self.learning_rate <= 1e-6:
            if verbose:
                print(msg + " Learning rate too small. Stopping.")
            return True
        self.learning_rate /= 5.0
        if verbose:
            print(msg + " Setting learning rate to %f" % self.learning_rate)
        return False

    def kernel_state(self):
        """State handed to the compiled kernels.

        Returns
        -------
        hyper : ndarray of float64
            The scalars, laid out as :data:`fastmlp.kernels.codes.HYPER_FIELDS`.
        first, second : ndarray
            The velocity and an unused empty buffer.
        step : ndarray of int64, shape (1,)
            Unused by SGD.
        """
        hyper = codes.hyper_array(learning_rate=self.learning_rate, momentum=self.momentum,
                                  nesterov=self.nesterov,
                                  learning_rate_init=self.learning_rate_init)
        return hyper, self.velocity, self.velocity[:0], np.zeros(1, dtype=np.int64)

    def sync_from_kernel(self, step):
        """Read back state the kernel changed (nothing for SGD).

        Parameters
        ----------
        step : ndarray of int64, shape (1,)
            Step counter as returned by :meth:`kernel_state`.
        """


class Adam:
    """Adam, as scikit-learn's ``AdamOptimizer``.

    Parameters
    ----------
    n_params : int
        Length of the flat parameter buffer.
    dtype : numpy dtype
        Dtype of the parameters.
    learning_rate_init : float
        Step size.
    beta_1, beta_2 : float
        Decay rates of the first and second moment estimates.
    epsilon : float
        Added to the denominator for numerical stability.
    """

    kind = codes.ADAM

    def __init__(self, n_params, dtype, learning_rate_init=0.001, beta_1=0.9,
                 beta_2=0.999, epsilon=1e-8):
        self.learning_rate_init = float(learning_rate_init)
        self.learning_rate = float(learning_rate_init)
        self.beta_1 = float(beta_1)
        self.beta_2 = float(beta_2)
        self.epsilon = float(epsilon)
        self.t = 0
        self.ms = np.zeros(n_params, dtype=dtype)
        self.vs = np.zeros(n_params, dtype=dtype)

    def step(self, params, grad):
        """Apply one update in place.

        Parameters
        ----------
        params : ndarray of shape (n_params,)
            Flat parameters, updated in place.
        grad : ndarray of shape (n_params,)
            Gradient of the mini-batch loss.
        """
        self.t += 1
        self.ms[...] = self.beta_1 * self.ms + (1 - self.beta_1) * grad
        self.vs[...] = self.beta_2 * self.vs + (1 - self.beta_2) * grad**2
        self.learning_rate = (self.learning_rate_init * np.sqrt(1 - self.beta_2**self.t)
                              / (1 - self.beta_1**self.t))
        params += -self.learning_rate * self.ms / (np.sqrt(self.vs) + self.epsilon)

    def iteration_ends(self, time_step):
        """Nothing to do at the end of an epoch for Adam.

        Parameters
        ----------
        time_step : int
            Number of training samples seen so far.
        """

    def trigger_stopping(self, msg, verbose):
        """Stop when the loss stopped improving.

        Parameters
        ----------
        msg : str
            Why training stalled, printed when ``verbose``.
        verbose : bool
            Whether to print.

        Returns
        -------
        is_stopping : bool
            Always True.
        """
        if verbose:
            print(msg + " Stopping.")
        return True

    def kernel_state(self):
        """State handed to the compiled kernels; see :meth:`SGD.kernel_state`.

        Returns
        -------
        hyper : ndarray of float64
        first, second : ndarray
            First and second moment estimates.
        step : ndarray of int64, shape (1,)
            The step counter, incremented by the kernel.
        """
        hyper = codes.hyper_array(learning_rate=self.learning_rate, beta_1=self.beta_1,
                                  beta_2=self.beta_2, epsilon=self.epsilon,
                                  learning_rate_init=self.learning_rate_init)
        return hyper, self.ms, self.vs, np.array([self.t], dtype=np.int64)

    def sync_from_kernel(self, step):
        """Read back the step counter the kernel advanced.

        Parameters
        ----------
        step : ndarray of int64, shape (1,)
            Step counter as returned by :meth:`kernel_state`.
        """
        self.t = int(step[0])
        if self.t:
            self.learning_rate = (self.learning_rate_init * np.sqrt(1 - self.beta_2**self.t)
                                  / (1 - self.beta_1**self.t))


def make_optimizer(solver, n_params, dtype, **params):
    """Build the optimizer an estimator's parameters ask for.

    Parameters
    ----------
    solver : {'sgd', 'adam'}
        Which optimizer.
    n_params : int
        Length of the flat parameter buffer.
    dtype : numpy dtype
        Dtype of the parameters.
    **params
        The estimator's hyper-parameters (``learning_rate_init``,
        ``learning_rate``, ``momentum``, ``nesterovs_momentum``, ``power_t``,
        ``beta_1``, ``beta_2``, ``epsilon``).

    Returns
    -------
    optimizer : SGD or Adam
    """
    if solver == "sgd":
        return SGD(n_params, dtype, params["learning_rate_init"], params["learning_rate"],
                   params["momentum"], params["nesterovs_momentum"], params["power_t"])
    if solver == "adam":
        return Adam(n_params, dtype, params["learning_rate_init"], params["beta_1"],
                    params["beta_2"], params["epsilon"])
    raise ValueError(f"Unknown stochastic solver {solver!r}; expected 'sgd' or 'adam'.")
