#!/usr/bin/env python3
"""Mutation check: damaged packed files are refused or score exactly as the original.

Trains a tiny model on tests/data/tiny, packs it at 4 bits per row (a file the int8 engine runs),
scores a few sentences with it in the float and the int8 engine, then makes COUNT seeded
mutations of the packed file and scores each the same two ways. Every mutant must either be
refused (exit status 1 or 2, one `error: ...` line) or print exactly the original's scores; a
crash (a signal, or no `error:` line) or a different score printed with success is a failure.

Mutation classes (dealt round-robin):
  flip      one random byte of the file XORed with a random non-zero value
  truncate  the file cut at a random length
  header    one edit of the JSON header (a tensor renamed, a shape or offset changed, a dtype
            changed, a field removed, an unknown field added, a configuration value changed), the
            header's length and SHA-256 rewritten so that the edit reaches the strict reader
  append    random bytes added at the end

usage: tools/mutation_check.py [--count 1000] [--seed 1] [--lmquant build/lmquant] [--keep DIR]
"""
import argparse
import collections
import hashlib
import json
import os
import random
import re
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TINY = os.path.join(ROOT, "tests", "data", "tiny")
SENTENCES = "the cat sat on the mat .\na sentence with words never seen\nthe the the\n"


def run(lmq, *args, stdin=None):
    return subprocess.run([lmq, *args], input=stdin, capture_output=True, text=True)


def score(lmq, model, engine, sentences_file):
    return run(lmq, "score", "-q", "--model", model, "--corpus", TINY, "--engine", engine,
               "--input", sentences_file)


def split_file(data):
    """(magic, header JSON, header hash, payload) of a format-2 checkpoint."""
    (length,) = struct.unpack("<Q", data[8:16])
    header = data[16:16 + length]
    return data[:8], json.loads(header), data[16 + length:16 + length + 32], data[16 + length + 32:]


def join_file(magic, header, payload):
    text = json.dumps(header, separators=(",", ":")).encode()
    head = magic + struct.pack("<Q", len(text)) + text
    return head + hashlib.sha256(head).digest() + payload


def header_edit(data, rng):
    magic, h, _, payload = split_file(data)
    tensors = h["tensors"]
    t = rng.choice(tensors)
    kind = rng.randrange(9)
    what = ""
    if kind == 0:
        what = "rename tensor " + t["name"]
        t["name"] = t["name"][:-1] + rng.choice("x>_.0")
    elif kind == 1:
        what = "shape of " + t["name"]
        if t["shape"]:
            i = rng.randrange(len(t["shape"]))
            t["shape"][i] = max(0, t["shape"][i] + rng.choice([-1, 1, 2]))
        else:
            t["shape"] = [1]
    elif kind == 2:
        what = "offset of " + t["name"]
        t["offset"] += rng.choice([-1, 1, 4])
    elif kind == 3:
        what = "dtype of " + t["name"]
        t["dtype"] = rng.choice([d for d in ["float32", "float16", "int64", "int16", "uint8"]
                                 if d != t["dtype"]])
    elif kind == 4:
        key = rng.choice(["tokenizer", "vocab_hash", "meta", "vocab", "format", "kind"])
        what = "remove field " + key
        h.pop(key, None)
    elif kind == 5:
        what = "unknown field"
        h["comment"] = "added"
    elif kind == 6:
        what = "remove tensor " + t["name"]
        tensors.remove(t)
    elif kind == 7:
        q = h["meta"]["quant"]
        key = rng.choice(sorted(q))
        what = "quant setting " + key
        v = q[key]
        if isinstance(v, bool):
            q[key] = not v
        elif isinstance(v, (int, float)):
            q[key] = v + rng.choice([-1, 1])
        elif isinstance(v, str):
            q[key] = {"granularity": "tensor", "clip": "mse", "grid": "midrise",
                      "targets": "recurrent"}.get(key, v + "x")
        else:
            q.pop(key)
    else:
        c = h["config"]
        key = rng.choice(sorted(c))
        what = "model config " + key
        v = c[key]
        c[key] = (not v) if isinstance(v, bool) else v + rng.choice([-1, 1])
    return join_file(magic, h, payload), what


def mutate(data, cls, rng):
    if cls == "flip":
        i = rng.randrange(len(data))
        b = bytearray(data)
        b[i] ^= rng.randrange(1, 256)
        return bytes(b), "byte %d" % i
    if cls == "truncate":
        n = rng.randrange(len(data))
        return data[:n], "to %d bytes" % n
    if cls == "append":
        return data + bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64))), "append"
    return header_edit(data, rng)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--lmquant", default=os.path.join(ROOT, "build", "lmquant"))
    ap.add_argument("--keep", default="", help="keep the failing mutants in this folder")
    a = ap.parse_args()
    rng = random.Random(a.seed)
    tmp = tempfile.mkdtemp(prefix="lmquant_mutation_")
    model, packed = os.path.join(tmp, "tiny.lmq"), os.path.join(tmp, "tiny.4b.lmq")
    sentences = os.path.join(tmp, "sentences.txt")
    with open(sentences, "w") as f:
        f.write(SENTENCES)
    for cmd in (["train", "-q", "--corpus", TINY, "--emb", "16", "--hidden", "16", "--epochs",
                 "1", "--out", model],
                ["quantize", "-q", "--model", model, "--corpus", TINY, "--bits", "4",
                 "--granularity", "row", "--save-packed", packed]):
        r = run(a.lmquant, *cmd)
        if r.returncode != 0:
            sys.exit("mutation_check: %s failed: %s" % (cmd[0], r.stderr))
    original = {e: score(a.lmquant, packed, e, sentences) for e in ("float", "int8")}
    for e, r in original.items():
        if r.returncode != 0:
            sys.exit("mutation_check: the original file fails in %s: %s" % (e, r.stderr))
    data = open(packed, "rb").read()
    classes = ["flip", "truncate", "header", "append"]
    table = {c: {"refused": 0, "identical": 0, "different": 0, "crash": 0} for c in classes}
    failures = []
    reasons = {c: collections.Counter() for c in classes}  # how each class was refused
    mutant = os.path.join(tmp, "mutant.lmq")
    for i in range(a.count):
        cls = classes[i % len(classes)]
        bad, what = mutate(data, cls, rng)
        with open(mutant, "wb") as f:
            f.write(bad)
        for engine in ("float", "int8"):
            r = score(a.lmquant, mutant, engine, sentences)
            last = r.stderr.strip().splitlines()[-1] if r.stderr.strip() else ""
            if r.returncode in (1, 2) and last.startswith("error: "):
                outcome = "refused"
                # The reason without the file's name, numbers and quoted values.
                why = last[len("error: "):].replace("--model " + mutant, "F").replace(mutant, "F")
                why = why.replace("F: ", "").replace("--model: ", "")
                why = re.sub(r"'[^']*'", "'…'", re.sub(r"[0-9]+", "N", why))
                reasons[cls][why[:90]] += 1
            elif r.returncode == 0:
                outcome = "identical" if r.stdout == original[engine].stdout else "different"
            else:
                outcome = "crash"
            table[cls][outcome] += 1
            if outcome in ("different", "crash"):
                failures.append("%d %s (%s) %s: exit %d %s" % (i, cls, what, engine,
                                                               r.returncode, last[:200]))
                if a.keep:
                    os.makedirs(a.keep, exist_ok=True)
                    with open(os.path.join(a.keep, "mutant_%d.lmq" % i), "wb") as f:
                        f.write(bad)
    print("| mutation | runs | refused | identical | different (silent) | crash |")
    print("|---|---|---|---|---|---|")
    for c in classes:
        t = table[c]
        print("| %s | %d | %d | %d | %d | %d |" % (c, sum(t.values()), t["refused"],
                                                   t["identical"], t["different"], t["crash"]))
    for c in classes:
        print("\n%s, refused because (count: reason):" % c)
        for why, n in reasons[c].most_common(8):
            print("  %5d: %s" % (n, why))
    for f in failures:
        print("FAIL", f)
    print("%d mutations x 2 engines: %d failures" % (a.count, len(failures)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
