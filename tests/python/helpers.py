"""What the Python tests share: the CLI under test, the tiny corpus, and running either."""
import os
import subprocess

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
TINY = os.path.join(HERE, "..", "data", "tiny")
CLI = os.environ.get("LMQUANT_CLI", os.path.join(HERE, "..", "..", "build", "lmquant"))


def cli(*args):
    """Runs the CLI; its stdout, after asserting it succeeded."""
    r = subprocess.run([CLI, *args], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r.stdout


def assert_refused(obj, path, *fragments, **save_kw):
    """torch.save(obj) to path must be refused by `lmquant eval` with one "error: ..." line
    holding every fragment."""
    torch.save(obj, path, **save_kw)
    r = subprocess.run([CLI, "eval", "--model", str(path), "--corpus", TINY],
                       capture_output=True, text=True)
    assert r.returncode != 0
    assert r.stderr.startswith("error: ")
    for f in fragments:
        assert f in r.stderr, r.stderr
