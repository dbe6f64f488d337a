"""Run many ``python -m oodbench`` commands as forked processes of one parent that has imported torch already.

A zygote (as Android starts its apps): this script imports the heavy third-party modules once (torch,
torchvision, timm, numpy, scipy, PIL, scikit-learn; about 3 s each time a fresh interpreter does it), then forks one
child per command. Each child is a real process with its own working directory, environment, file descriptors
and exit code; it imports oodbench afresh and runs the ``oodbench`` module as ``python -m oodbench`` does.
Nothing of oodbench is imported before the fork, so no oodbench state is shared. Commands that need another
``sys.path`` at start-up (``PYTHONPATH``) must be started as ordinary subprocesses.

stdin: JSON ``[{"name", "argv", "env", "cwd"}, …]`` and the number of workers as ``argv[1]``; stdout: JSON
``{name: [returncode, stdout, stderr]}``.
"""

from __future__ import annotations

import json
import os
import runpy
import sys
import tempfile
import traceback


def _preload() -> None:
    import numpy  # noqa: F401
    import PIL.Image  # noqa: F401
    import scipy.io  # noqa: F401
    import sklearn.metrics  # noqa: F401
    import timm  # noqa: F401
    import torch  # noqa: F401
    import torchvision  # noqa: F401


def _exit_code(exc: SystemExit) -> int:
    """The exit status the interpreter gives ``raise SystemExit(code)``."""
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=sys.stderr)
    return 1


def _child(job: dict, out: str, err: str) -> None:
    """In the forked process: become ``python -m oodbench ARGV`` in the job's folder and environment."""
    os.chdir(job["cwd"])
    os.environ.clear()
    os.environ.update(job["env"])
    for fd, path in ((1, out), (2, err)):
        handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(handle, fd)
        os.close(handle)
    sys.argv = ["oodbench", *job["argv"]]
    sys.path[0] = job["cwd"]
    try:
        runpy.run_module("oodbench", run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as exc:
        code = _exit_code(exc)
    except BaseException:  # what the interpreter does with an uncaught exception
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def run_all(jobs: list[dict], workers: int, scratch: str) -> dict[str, list]:
    """Fork at most ``workers`` children at a time; collect each one's exit code and output."""
    running: dict[int, tuple[str, str, str]] = {}
    answers: dict[str, list] = {}
    pending = list(jobs)

    def reap() -> None:
        pid, status = os.wait()
        name, out, err = running.pop(pid)
        with open(out) as o, open(err) as e:
            answers[name] = [os.waitstatus_to_exitcode(status), o.read(), e.read()]

    while pending or running:
        while pending and len(running) < workers:
            job = pending.pop(0)
            out, err = (os.path.join(scratch, f"{len(answers) + len(running)}-{job['name']}.{s}") for s in "oe")
            sys.stdout.flush()
            pid = os.fork()
            if pid == 0:
                _child(job, out, err)
            running[pid] = (job["name"], out, err)
        reap()
    return answers


if __name__ == "__main__":
    _preload()
    todo = json.load(sys.stdin)
    with tempfile.TemporaryDirectory() as scratch:
        json.dump(run_all(todo, int(sys.argv[1]), scratch), sys.stdout)
