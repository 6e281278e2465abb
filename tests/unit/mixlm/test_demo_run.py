"""`mixlm demo`'s serve loop: Ctrl-C must leave the ranker thread to the graceful shutdown, not half-dead."""

from __future__ import annotations

import signal
import threading

from mixlm.demo_run import RankerThread, wait_until_interrupted


def test_ctrl_c_while_serving_returns_and_leaves_the_ranker_thread_alive_until_it_really_stops():
    release = threading.Event()
    ranker = threading.Thread(target=release.wait, name="stand-in-ranker", daemon=True)
    ranker.start()
    # pytest may run with SIGINT ignored (a shell's background job) or another handler: Ctrl-C must mean
    # KeyboardInterrupt here, as in a terminal.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    # Never hang the suite: if the interrupt is lost, this ends the stand-in ranker and the assertion below fails.
    watchdog = threading.Timer(30, release.set)
    watchdog.start()
    # Ctrl-C delivered to the main thread while it waits, as a terminal delivers it.
    ctrl_c = threading.Timer(0.3, signal.pthread_kill, (threading.main_thread().ident, signal.SIGINT))
    ctrl_c.start()
    try:
        wait_until_interrupted(RankerThread("http://127.0.0.1:1", ranker))
        # A Ctrl-C inside Thread.join() makes CPython 3.11 mark the live thread stopped: the shutdown's join
        # then returned at once and the socket was closed under the running server.
        assert ranker.is_alive()
        release.set()
        ranker.join(timeout=5)
        assert not ranker.is_alive()
    finally:
        release.set()
        ctrl_c.cancel()
        watchdog.cancel()
        signal.signal(signal.SIGINT, previous)
