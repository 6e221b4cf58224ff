"""The ``fastmlp`` command line: ``fastmlp bench`` is the main job."""

import argparse
import sys


def _positive_ints(text):
    """Parse ``"256,128"`` into ``(256, 128)``; every value must be a positive integer."""
    try:
        values = tuple(int(part) for part in text.split(","))
    except ValueError:
        values = ()
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(
            f"expected positive integers separated by commas, got {text!r}")
    return values


def _positive_int(text):
    """Parse one positive integer."""
    values = _positive_ints(text)
    if len(values) != 1:
        raise argparse.ArgumentTypeError(f"expected one positive integer, got {text!r}")
    return values[0]


def _add_bench_parser(sub):
    bench = sub.add_parser(
        "bench",
        help="Time fastmlp, idiomatic NumPy and scikit-learn training a sigmoid MLP on MNIST.",
        description=(
            "Train the same sigmoid MLP (SGD, learning rate 0.1, Nesterov momentum 0.9, "
            "alpha 1e-4) with fastmlp, an idiomatic NumPy trainer and scikit-learn, from "
            "the same starting weights and with the same shuffles, and print seconds per "
            "epoch, the speed-up against NumPy and against scikit-learn, the fraction of "
            "the machine's large-GEMM rate, final training loss and test accuracy. "
            "Missing MNIST files are downloaded (about 11 MB); when that fails, or with "
            "--no-download, it falls back to scikit-learn's digits data set and says so."),
    )
    bench.add_argument("--hidden", type=_positive_ints, default=(128,), metavar="N[,N...]",
                       help="hidden layer widths (default: 128)")
    bench.add_argument("--batch-sizes", type=_positive_ints, default=None, metavar="B[,B...]",
                       help="mini-batch sizes (default: 32,128,512)")
    bench.add_argument("--epochs", type=_positive_int, default=None, metavar="N",
                       help="timed epochs per library and batch size; the median is shown "
                            "(default: 5 on MNIST, 2 with --quick; 20 and 10 on the "
                            "digits fallback)")
    bench.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                       help="compute dtype (default: float32)")
    bench.add_argument("--quick", action="store_true",
                       help="train on the first 10000 rows for 2 epochs (well under a "
                            "minute)")
    bench.add_argument("--out", default="fastmlp-bench.png", metavar="PATH",
                       help="PNG plot, written when matplotlib is installed "
                            "(default: fastmlp-bench.png)")
    bench.add_argument("--json", dest="json_path", default=None, metavar="PATH",
                       help="also write the results as JSON")
    bench.add_argument("--sklearn", dest="with_sklearn", default=True,
                       action=argparse.BooleanOptionalAction,
                       help="time scikit-learn's MLPClassifier too (default: yes; "
                            "--no-sklearn skips it and its column)")
    bench.add_argument("--data-home", default=None, metavar="DIR",
                       help="directory with the MNIST files (default: $FASTMLP_DATA, else "
                            "the per-user cache directory)")
    bench.add_argument("--download", default=True, action=argparse.BooleanOptionalAction,
                       help="download missing MNIST files, about 11 MB (default: yes); "
                            "--no-download never touches the network and falls back to "
                            "digits when the files are missing")
    bench.add_argument("--gemm-size", type=_positive_int, default=2048, metavar="N",
                       help="size of the NumPy NxNxN matmul that measures the machine's "
                            "large-GEMM rate (default: 2048)")
    bench.add_argument("--seed", type=int, default=0,
                       help="seed of the shared starting weights and shuffles (default: 0)")
    progress = bench.add_mutually_exclusive_group()
    progress.add_argument("--progress", dest="progress", action="store_true", default=None,
                          help="always show the progress bar (default: only on a terminal)")
    progress.add_argument("--no-progress", dest="progress", action="store_false",
                          help="never show the progress bar")
    return bench


def build_parser():
    """Build the argument parser for the ``fastmlp`` command.

    Returns
    -------
    parser : argparse.ArgumentParser
        Parser with one sub-command per job.
    """
    parser = argparse.ArgumentParser(
        prog="fastmlp",
        description="Fast CPU training of sigmoid multi-layer perceptrons.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _add_bench_parser(sub)
    return parser


def main(argv=None):
    """Run the ``fastmlp`` command line.

    Parameters
    ----------
    argv : list of str, optional
        Arguments without the program name; ``sys.argv[1:]`` when omitted.

    Returns
    -------
    status : int
        Process exit status.
    """
    args = build_parser().parse_args(argv)
    if args.command == "bench":
        # Imported here so that `fastmlp --help` does not pay for numba and scikit-learn.
        from fastmlp.bench.run import bench

        options = vars(args)
        del options["command"]
        return bench(**options)
    return 0


if __name__ == "__main__":
    sys.exit(main())
