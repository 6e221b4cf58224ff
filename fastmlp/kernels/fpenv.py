"""Flush subnormal floats to zero inside the kernels (x86 only), restoring the caller's mode.

With Adam and an L2 penalty, the weights of inputs that are always zero (the
border pixels of MNIST) shrink geometrically and pass through the subnormal
range (below 1.2e-38 in float32). x86 cores handle subnormal operands in
microcode, about a hundred times slower, so epochs slow down many times as
they accumulate (scikit-learn's own MLPClassifier slows the same way). Setting the MXCSR bits
FTZ (results) and DAZ (operands) makes those values exact zeros instead; no
normal-range value changes, so only quantities already below the smallest
normal float differ from scikit-learn. The mode is per thread: every thread
that calls a kernel sets it around the call (:func:`subnormals_flushed`) and
restores its own mode afterwards, even on error; BLAS calls made from the
kernel inherit it.
"""

import contextlib
import platform

import llvmlite.ir as ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

_X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686", "x86")
FTZ_DAZ = 0x8040  # MXCSR bit 15 (flush to zero) and bit 6 (denormals are zero)


def _mxcsr_call(builder, name, ptr):
    fnty = ir.FunctionType(ir.VoidType(), [ir.IntType(8).as_pointer()])
    fn = cgutils.get_or_insert_function(builder.module, fnty, f"llvm.x86.sse.{name}")
    builder.call(fn, [builder.bitcast(ptr, ir.IntType(8).as_pointer())])


@intrinsic
def _swap_mxcsr(typingctx, bits, on):
    """Set (``on``) or restore the MXCSR ``bits``; returns the register's old value."""

    def codegen(context, builder, signature, args):
        slot = cgutils.alloca_once(builder, ir.IntType(32))
        _mxcsr_call(builder, "stmxcsr", slot)
        old = builder.load(slot)
        new_bits = context.cast(builder, args[0], signature.args[0], types.int32)
        flagged = builder.select(args[1], builder.or_(old, new_bits),
                                 builder.or_(builder.and_(old, builder.not_(
                                     ir.Constant(ir.IntType(32), FTZ_DAZ))), new_bits))
        builder.store(flagged, slot)
        _mxcsr_call(builder, "ldmxcsr", slot)
        return context.cast(builder, old, types.int32, types.int64)

    return types.int64(bits, on), codegen


if _X86:
    @njit(cache=True, nogil=True, inline="always")
    def swap_subnormals(bits, on):
        """Turn on FTZ/DAZ for this thread (``on``), or put back bits saved before.

        Parameters
        ----------
        bits : int
            :data:`FTZ_DAZ` to turn both on, or a value this function returned.
        on : bool
            True: set ``bits``. False: the FTZ/DAZ bits become exactly ``bits``.

        Returns
        -------
        int
            The previous FTZ/DAZ bits.
        """
        return _swap_mxcsr(bits, on) & FTZ_DAZ
else:  # other architectures: subnormals are left to the hardware's default
    @njit(cache=True, nogil=True, inline="always")
    def swap_subnormals(bits, on):
        """No-op off x86; returns 0."""
        return 0


@contextlib.contextmanager
def subnormals_flushed():
    """Flush subnormals to zero in this thread for the duration of the block.

    Yields
    ------
    None

    Examples
    --------
    >>> import numpy as np
    >>> tiny = np.float32(1e-20)
    >>> with subnormals_flushed():
    ...     inside = tiny * tiny
    >>> float(tiny * tiny) > 0.0  # the caller's mode is back
    True
    """
    # One compiled function both ways: one load from the disk cache per process
    # instead of two (~2 ms of a warm start).
    saved = swap_subnormals(FTZ_DAZ, True)
    try:
        yield
    finally:
        swap_subnormals(saved, False)
