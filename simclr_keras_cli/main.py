"""Entry point of the `simclr-keras` console script.

Parses the arguments first (no Keras: `--help` and argument errors are
instant and quiet), then imports Keras with the backend's start-up log lines
silenced, then runs the command. A `UsageError` (a bad flag, folder or file)
prints one line and exits 2; a disk that refuses a file (full, read-only, no
permission) prints the `OSError`'s message, which names the file, and exits 1;
any other exception keeps its traceback. A reader that stops reading early
(`simclr-keras backbones | head`) ends the command quietly. The commands
print their timings through `print_seconds`.
"""

import errno
import importlib
import os
import sys
import time

from simclr_keras_cli import evaluate_checks, pretrain_checks
from simclr_keras_cli.arguments import build_parser
from simclr_keras_cli.usage_errors import UsageError

COMMANDS = {
    "demo": "simclr_keras_cli.demo",
    "pretrain": "simclr_keras_cli.pretrain",
    "evaluate": "simclr_keras_cli.evaluate",
    "embed": "simclr_keras_cli.embed",
    "convert-weights": "simclr_keras_cli.convert_weights",
    "backbones": "simclr_keras_cli.backbones",
}
# OSErrors of the disk, not of the program: one line, exit 1.
DISK_ERRORS = {
    errno.ENOSPC,
    errno.EDQUOT,
    errno.EROFS,
    errno.EACCES,
    errno.EPERM,
    getattr(errno, "EFBIG", None),
} - {None}


def main(argv=None):
    """Run `simclr-keras` with `argv` (default: `sys.argv[1:]`); returns the exit code."""
    try:
        try:
            return run_command(build_parser().parse_args(argv))
        finally:
            sys.stdout.flush()  # here, not at exit: a closed pipe is then caught below
    except BrokenPipeError:
        return closed_output()


def run_command(args):
    """Run the parsed command; usage, disk and Ctrl-C errors become one line and an exit code."""
    try:
        check_paths(args)  # seconds before Keras would have loaded
        import_keras_quietly()
        command = importlib.import_module(COMMANDS[args.command])
        return command.run(args)
    except UsageError as error:
        print(f"simclr-keras {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except OSError as error:
        if error.errno not in DISK_ERRORS:
            raise
        print(f"simclr-keras {args.command}: error: {disk_message(error)}", file=sys.stderr)
        return 1


def closed_output():
    """Exit code 141 (128 + SIGPIPE, as a shell reports a command its pipe's
    reader closed) without a traceback once stdout's reader has gone.

    Standard output is pointed at the null device so that Python's last
    flush at exit writes nowhere instead of raising a second time.
    """
    try:
        stdout = sys.stdout.fileno()
    except (OSError, ValueError):  # no file descriptor (captured output)
        return 141
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, stdout)
    os.close(devnull)
    return 141


def check_paths(args):
    """The usage errors a command's arguments show without Keras: its input
    folder and backbone file exist, and for `pretrain` the checks of
    `pretrain_checks` (backbone name, input scaling, guard, recipe) and
    `evaluate_checks` (output, baseline, data flags, input scaling).
    """
    if args.command == "pretrain":
        pretrain_checks.check_arguments(args)
    if args.command == "evaluate":
        evaluate_checks.check_arguments(args)
    if args.command == "embed":
        evaluate_checks.check_embed_arguments(args)


def disk_message(error):
    """An `OSError` of the disk as one line that names the file."""
    text = error.strerror or str(error)
    if error.filename is not None and str(error.filename) not in text:
        text = f"{text}: {error.filename}"
    return " ".join(str(text).split())


def print_seconds(label, start):
    """Print `label in N s` for the user, N the seconds since `start` (a `time.time()`)."""
    print(f"{label} in {time.time() - start:.0f} s", flush=True)


def import_keras_quietly():
    """Import Keras with the backend's start-up log lines silenced.

    TensorFlow and XLA write C++ log lines (CUDA stubs, CPU features, absl)
    to the process's stderr while they load, whatever Python's logging
    says: stderr is pointed at a temporary file during the import and
    replayed only if the import fails.

    Returns:
        The `keras` module.
    """
    import importlib.util
    import logging
    import tempfile

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import keras

            if keras.backend.backend() != "tensorflow" and importlib.util.find_spec("tensorflow"):
                # Keras' data utilities load TensorFlow later on the other
                # backends too (seen on torch): load it here, while quiet.
                importlib.import_module("tensorflow")
        except BaseException:
            os.dup2(saved, 2)
            captured.seek(0)
            sys.stderr.write(captured.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    for name in ("absl", "tensorflow", "jax._src.xla_bridge"):
        logging.getLogger(name).setLevel(logging.ERROR)
    return keras


if __name__ == "__main__":
    sys.exit(main())
