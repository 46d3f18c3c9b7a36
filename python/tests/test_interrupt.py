"""Ctrl-C: SIGINT to a program waiting in Parallel raises KeyboardInterrupt in
its main thread within a second, and the network is poisoned, so that its
processes end; the exit is clean (python3 -X dev, no crash)."""
import os
import signal
import subprocess
import sys
import time

import pytest

SCRIPT = r"""
import sys, time
from cspp import *

@process
def ticker(cout):
    while True:
        time.sleep(0.01)          # not blocked in csp: no deadlock to report
        cout(1)

@process
def reader(cin):
    try:
        while True:
            cin()
    except ChannelPoisonException:
        print("reader poisoned", flush=True)
        raise

@process
def blocked(cin):
    try:
        cin()
    except ChannelPoisonException:
        print("blocked poisoned", flush=True)
        raise

@process
def busy():
    while True:
        sum(range(1000))          # never touches a channel

c, d = Channel("c"), Channel("d")
print("ready", flush=True)
try:
    Parallel(ticker(-c), reader(+c), blocked(+d), *( [busy()] if "busy" in sys.argv else [] ))
except KeyboardInterrupt:
    print("KeyboardInterrupt", flush=True)
    sys.exit(3)
"""


@pytest.mark.parametrize("busy", [False, True])
def test_ctrl_c_raises_keyboard_interrupt_and_poisons(busy, tmp_path):
    script = tmp_path / "net.py"
    script.write_text(SCRIPT)
    env = dict(os.environ)
    proc = subprocess.Popen([sys.executable, "-X", "dev", str(script)] + (["busy"] if busy else []),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(0.3)
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    took = time.monotonic() - sent
    assert proc.returncode == 3, (out, err)
    assert "KeyboardInterrupt" in out
    assert "blocked poisoned" in out and "reader poisoned" in out
    assert took < 3.0, took
    assert "Fatal" not in err and "Segmentation" not in err, err
