"""Helper for test_resume_faults.py: a resumable run that SIGKILLs itself
during the save after epoch 2.

Usage: python kill_during_save_script.py MODE SAVE_PATH EPOCHS OUT_JSON STEPS
MODE "model": killed while the checkpoint `.keras` is half written (a temp
file); "state": killed after the checkpoint is in place but before
`state.json` is written.
"""

import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import resume_script  # noqa: E402

from simclr_keras._atomic import atomic_write  # noqa: E402
from simclr_keras.callbacks import resumable_checkpoint as checkpoint  # noqa: E402

calls = {"model": 0, "state": 0}
real_save, real_json = checkpoint.atomic_save_model, checkpoint.atomic_write_json


def die():
    os.kill(os.getpid(), signal.SIGKILL)


def save_then_die(model, path):
    calls["model"] += 1
    if calls["model"] < 2:
        return real_save(model, path)

    def half_write(tmp):
        model.save(tmp)
        with open(tmp, "r+b") as f:
            f.truncate(os.path.getsize(tmp) // 2)
        die()

    return atomic_write(path, half_write)


def json_then_die(obj, path):
    calls["state"] += 1
    if calls["state"] >= 2:
        die()
    return real_json(obj, path)


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "model":
        checkpoint.atomic_save_model = save_then_die
    else:
        checkpoint.atomic_write_json = json_then_die
    resume_script.main(sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5]))
