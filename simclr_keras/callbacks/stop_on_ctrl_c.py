"""`StopOnCtrlC`: stop `fit()` cleanly at the next batch end when Ctrl-C is pressed."""

import signal
import threading

import keras


class StopOnCtrlC(keras.callbacks.Callback):
    """Turn Ctrl-C during `fit()` into a `KeyboardInterrupt` at the next batch end.

    Python raises `KeyboardInterrupt` wherever the main thread happens to
    be; inside a finaliser (frequent on JAX, which frees device buffers in
    `__del__`) it is printed and dropped, and training goes on to the end.
    From the start of `fit()` to its end this callback handles SIGINT
    itself: the signal only sets a flag that the next batch end (or epoch
    end) checks, and raises `KeyboardInterrupt` there, after the callbacks
    before it in the list have run; a second Ctrl-C interrupts at once.
    Python's own handler is back when `fit()` ends or is interrupted (after
    `fit()` failed with another error it stays until then: a first Ctrl-C
    only sets the flag, a second one interrupts). Where
    SIGINT is not Python's default (a process started in the background
    ignores it) or `fit()` runs outside the main thread, it does nothing.

    Put it last, after a `ResumableCheckpoint`: an epoch that ends as Ctrl-C
    is pressed is then checkpointed before training stops, and rerunning the
    script resumes from the last finished epoch.

    Returns:
        A `keras.callbacks.Callback`; `.requested` tells whether Ctrl-C was pressed.

    Example:
    >>> try:                                               # doctest: +SKIP
    ...     simclr.fit(x, epochs=100, callbacks=[StopOnCtrlC()])
    ... except KeyboardInterrupt:
    ...     print("stopped; run again to resume")
    """

    def __init__(self):
        super().__init__()
        self.requested = False
        self._previous = None

    def _handle(self, signum, frame):
        if self.requested:
            self._restore()
            raise KeyboardInterrupt
        self.requested = True

    def _restore(self):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None

    def on_train_begin(self, logs=None):
        self.requested = False
        if (
            threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGINT) is signal.default_int_handler
        ):
            self._previous = signal.signal(signal.SIGINT, self._handle)

    def on_train_batch_end(self, batch, logs=None):
        if self.requested:
            self._restore()
            raise KeyboardInterrupt

    def on_epoch_end(self, epoch, logs=None):
        self.on_train_batch_end(None)

    def on_train_end(self, logs=None):
        self._restore()
