"""`simclr-keras demo`: the digits demo (`simclr_keras.demo.run_demo`)."""

from simclr_keras.demo import run_demo
from simclr_keras_cli.usage_errors import check_output


def run(args):
    """Run the demo with the parsed arguments; returns the exit code."""
    check_output(args.output)
    run_demo(args.output, epochs=args.epochs, batch_size=args.batch_size, seed=args.seed)
    return 0
