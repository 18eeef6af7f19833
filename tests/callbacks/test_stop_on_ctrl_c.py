"""`StopOnCtrlC`: Ctrl-C becomes a `KeyboardInterrupt` at the next batch end, the handler restored."""

import os
import signal
import threading

import pytest
import testing

from simclr_keras.callbacks.stop_on_ctrl_c import StopOnCtrlC


class TestStopOnCtrlC(testing.TestCase):
    def test_ctrl_c_stops_at_the_next_batch_end_and_restores_the_handler(self):
        if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
            pytest.skip("SIGINT is not Python's default handler here")
        stop = StopOnCtrlC()
        stop.on_train_begin()
        assert signal.getsignal(signal.SIGINT) is not signal.default_int_handler
        stop.on_train_batch_end(0)  # nothing pressed: training goes on
        os.kill(os.getpid(), signal.SIGINT)  # handled: only a flag is set
        assert stop.requested
        with pytest.raises(KeyboardInterrupt):
            stop.on_train_batch_end(1)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler

    def test_a_finished_fit_restores_the_handler_and_a_second_ctrl_c_interrupts_at_once(self):
        if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
            pytest.skip("SIGINT is not Python's default handler here")
        stop = StopOnCtrlC()
        stop.on_train_begin()
        stop.on_epoch_end(0)
        stop.on_train_end()
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        stop.on_train_begin()
        os.kill(os.getpid(), signal.SIGINT)
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)  # the second: at once
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler

    def test_outside_the_main_thread_it_does_nothing(self):
        stop = StopOnCtrlC()
        before = signal.getsignal(signal.SIGINT)
        thread = threading.Thread(target=stop.on_train_begin)
        thread.start()
        thread.join()
        assert signal.getsignal(signal.SIGINT) is before
        stop.on_train_batch_end(0)
        stop.on_train_end()
