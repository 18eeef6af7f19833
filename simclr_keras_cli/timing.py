"""How long a step took, printed for the user."""

import time


def print_seconds(label, start):
    """Print `label in N s`, N the seconds since `start` (a `time.time()`)."""
    print(f"{label} in {time.time() - start:.0f} s", flush=True)
