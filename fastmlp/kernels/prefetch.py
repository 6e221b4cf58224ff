"""A software prefetch callable from ``@njit`` code (``llvm.prefetch``).

The training kernel reads each batch's targets (and sample weights) at
rows scattered over Y: a cache miss per row that the output delta would
wait on, unless the rows are fetched while the first layer computes.
"""

from llvmlite import ir
from numba import types
from numba.extending import intrinsic


@intrinsic
def prefetch(typingctx, address):
    """Ask the CPU to bring the cache line at ``address`` (an int64) into all cache levels.

    Parameters
    ----------
    address : int64
        Any address: a prefetch never faults.

    Returns
    -------
    None
    """
    if address != types.int64:
        return None

    def codegen(context, builder, signature, args):
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        module = builder.module
        name = "llvm.prefetch.p0"
        fn = module.globals.get(name) or ir.Function(
            module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]), name)
        # read (0), keep in every cache level (locality 3), data cache (1)
        builder.call(fn, [builder.inttoptr(args[0], i8p), ir.Constant(i32, 0),
                          ir.Constant(i32, 3), ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return types.void(address), codegen
