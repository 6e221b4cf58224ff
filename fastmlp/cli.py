"""The ``fastmlp`` command line: ``fastmlp bench`` is the main job."""

import argparse
import sys


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
    sub.add_parser("bench", help="Train on MNIST with the numba and numpy backends.")
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
        print("fastmlp bench: not built yet.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
