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


def interrupted(script, *args):
    """Run `script` (it prints "ready" first), send it SIGINT 0.3 s after it
    is ready; (return code, stdout, stderr, seconds from the signal to its end)."""
    proc = subprocess.Popen([sys.executable, "-X", "dev", str(script)] + list(args),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(0.3)
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    return proc.returncode, out, err, time.monotonic() - sent


@pytest.mark.parametrize("busy", [False, True])
@pytest.mark.parametrize("flavour", ["cspp", "cspp.greenlets"])
def test_ctrl_c_raises_keyboard_interrupt_and_poisons(busy, flavour, tmp_path):
    # (cspp.greenlets: the processes are greenlets of the main thread, and
    # Python's handler raises KeyboardInterrupt in whichever runs Python.)
    script = tmp_path / "net.py"
    script.write_text(SCRIPT.replace("from cspp import *", "from %s import *" % flavour))
    code, out, err, took = interrupted(script, *(["busy"] if busy else []))
    assert code == 3, (out, err)
    assert "KeyboardInterrupt" in out
    assert "blocked poisoned" in out and "reader poisoned" in out
    assert took < 3.0, took
    assert "Fatal" not in err and "Segmentation" not in err, err


EXIT_SCRIPT = r"""
import sys, time
from cspp import *

class Noisy:
    def __del__(self):
        pass

c = Channel("left full", buffer=10)
out = -c
for i in range(5):
    out(Noisy())                 # values left in a buffer at exit

@process
def stuck_reader(cin):
    cin()                        # blocked for ever on a channel nobody writes

@process
def sleeper():
    time.sleep(0.05)

d = Channel("never written")
keep = -d                        # main holds the writer: no deadlock to report
Spawn(sleeper())
t = __import__("threading").Thread(target=lambda: Parallel(stuck_reader(+d)), daemon=True)
t.start()
time.sleep(0.1)
print("exiting", flush=True)
"""


@pytest.mark.parametrize("flavour", ["cspp", "cspp.greenlets"])
def test_exit_with_processes_blocked_and_values_buffered_is_clean(flavour, tmp_path):
    script = tmp_path / "exit.py"
    script.write_text(EXIT_SCRIPT.replace("from cspp import *", "from %s import *" % flavour))
    run = subprocess.run([sys.executable, "-X", "dev", str(script)], capture_output=True, text=True,
                         timeout=30, env=dict(os.environ))
    assert run.returncode == 0, run.stderr
    assert run.stdout == "exiting\n"
    assert "Fatal" not in run.stderr and "Traceback" not in run.stderr, run.stderr


CHILD_SCRIPT = r"""
import os, sys, time
from cspp import *

@multiprocess
def spinner(cout):
    cout(os.getpid())
    while True:
        sum(range(1000))              # never touches a channel again

c = Channel("pid")
Parallel(process(lambda: None)())   # (cspp's SIGINT handler is in place before the fork)

@process
def tell(cin):
    print("child", cin(), flush=True)
    while True:
        time.sleep(0.01)

print("ready", flush=True)
try:
    Parallel(spinner(-c), tell(+c))
except KeyboardInterrupt:
    print("KeyboardInterrupt", flush=True)
    sys.exit(3)
"""


def test_ctrl_c_at_the_terminal_ends_multiprocess_children_too(tmp_path):
    # (A terminal's Ctrl-C signals the whole process group: the child, which
    # never calls csp, takes its own KeyboardInterrupt and ends.)
    script = tmp_path / "child.py"
    script.write_text(CHILD_SCRIPT)
    proc = subprocess.Popen([sys.executable, "-X", "dev", str(script)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ), start_new_session=True)
    assert proc.stdout.readline().strip() == "ready"
    child = int(proc.stdout.readline().split()[1])
    time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 3, (out, err)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        os.kill(child, signal.SIGKILL)
        pytest.fail("the @multiprocess child %d outlived Ctrl-C" % child)
