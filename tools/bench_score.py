#!/usr/bin/python3
"""Sentence-scoring benchmark: the lmquant Python API vs the lmquant CLI vs plain PyTorch Python
loops over the same model, float and int8, one process (the CLI in subprocesses beside it).

    PYTHONPATH=build/python /usr/bin/python3 tools/bench_score.py \
        --model wt2-lstm200/model.pt --data-dir DIR [--lines 4358] [--batch 32]

Scores the first --lines lines of WikiText-2's test split (all 4,358 by default), each line a
sentence (its words, then <eos>, from a fresh state: lm/score.h), one by one and in batches:
  - lmquant Python: lmquant.load(...).score(lines, batch_size=1 | B)
  - lmquant CLI: `lmquant score --batch-size 1 | B` on the same lines; its wall time less the
    time of the same command on one line (process start, model load), measured beside it
  - PyTorch loop: torch.nn Embedding + LSTM + Linear with the model's weights, log_softmax,
    one sentence per forward or B padded sentences per forward
  - int8: lmquant's int8 engine on the model quantized to 4 bits per row (max) and packed, vs
    PyTorch's own dynamic int8 (torch.quantization.quantize_dynamic of the LSTM and Linear)
  - ONNX Runtime (Node.js + npm onnxruntime-node, tools/onnx/ort_score.js): the model exported
    as ONNX (lmquant export), float, and the same 4-bit codes in its dynamic-int8 ops; skipped
    with a note where Node.js or the package is absent
Prints sentences/s and tokens/s (targets: words + 1) per path, the ratios the goals name, the
CPU and its vector ISA. Checks that every path's total log-probability agrees.
"""
import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time

import torch

import lmquant


def cpu_name():
    flags, name = set(), platform.processor()
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name") and name in ("", "x86_64"):
                name = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    isa = [x for x in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8") if x in flags]
    return name, "+".join(isa) or "baseline x86-64"


def vocabulary(data_dir):
    """lmquant's / pytorch/examples' word ids: first occurrence over train, valid, test."""
    ids = {}
    for split in ("train", "valid", "test"):
        with open(os.path.join(data_dir, "wikitext-2", split + ".txt")) as f:
            for line in f:
                for w in line.split() + ["<eos>"]:
                    ids.setdefault(w, len(ids))
    return ids


class TorchLM(torch.nn.Module):
    """pytorch/examples word_language_model's RNNModel (LSTM), eval mode."""

    def __init__(self, state):
        super().__init__()
        v, e = state["encoder.weight"].shape
        h = state["rnn.weight_hh_l0"].shape[1]
        layers = sum(1 for k in state if k.startswith("rnn.weight_ih_l"))
        self.encoder = torch.nn.Embedding(v, e)
        self.rnn = torch.nn.LSTM(e, h, layers)
        self.decoder = torch.nn.Linear(h, v)
        self.load_state_dict(state)
        self.eval()

    def forward(self, x):
        out, _ = self.rnn(self.encoder(x))
        return self.decoder(out)


def torch_scores(model, sentences, eos, batch):
    """Σ log p per sentence: inputs <eos> w1..wn, targets w1..wn <eos>; B padded at a time."""
    out = []
    with torch.no_grad():
        for b in range(0, len(sentences), batch):
            group = sentences[b:b + batch]
            n = max(len(s) for s in group) + 1
            x = torch.full((n, len(group)), eos, dtype=torch.long)
            y = torch.full((n, len(group)), eos, dtype=torch.long)
            mask = torch.zeros((n, len(group)), dtype=torch.bool)
            for j, s in enumerate(group):
                ids = [eos] + s + [eos]
                x[:len(ids) - 1, j] = torch.tensor(ids[:-1])
                y[:len(ids) - 1, j] = torch.tensor(ids[1:])
                mask[:len(ids) - 1, j] = True
            lp = torch.log_softmax(model(x), dim=-1).gather(2, y.unsqueeze(2)).squeeze(2)
            out.extend((lp * mask).sum(0).double().tolist())
    return out


def timed(fn):
    t0 = time.perf_counter()
    r = fn()
    return r, time.perf_counter() - t0


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NODE_PATH = os.environ.get("LMQUANT_NODE_PATH", os.path.join(ROOT, ".cache", "node", "node_modules"))


def ort_scores(onnx_path, sentences, eos, batch):
    """ONNX Runtime's Σ log p per sentence and its seconds (tools/onnx/ort_score.js), or None."""
    if not os.path.exists(os.path.join(NODE_PATH, "onnxruntime-node", "package.json")):
        return None
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump({"eos": eos, "sentences": sentences}, f)
    try:
        p = subprocess.run(["node", os.path.join(ROOT, "tools", "onnx", "ort_score.js"), onnx_path,
                            f.name, "--batch", str(batch), "--threads",
                            str(torch.get_num_threads())], capture_output=True, text=True,
                           env=dict(os.environ, NODE_PATH=NODE_PATH))
    except FileNotFoundError:
        return None
    finally:
        os.unlink(f.name)
    if p.returncode:
        sys.exit("ort_score.js failed: " + p.stderr)
    r = json.loads(p.stdout)
    return r["logprobs"], r["seconds"]


def cli_seconds(cli, args, lines):
    def run(text):
        t0 = time.perf_counter()
        p = subprocess.run([cli, "score", *args], input=text, capture_output=True, text=True)
        if p.returncode:
            sys.exit("lmquant score failed: " + p.stderr)
        return p.stdout, time.perf_counter() - t0
    out, whole = run("\n".join(lines) + "\n")
    _, start = run(lines[0] + "\n")
    return [json.loads(l)["logprob"] for l in out.splitlines()], whole - start, start


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="a PyTorch word_language_model state_dict")
    ap.add_argument("--data-dir", required=True, help="folder holding wikitext-2/")
    ap.add_argument("--lines", type=int, default=0, help="first N test lines (0: all)")
    ap.add_argument("--batch", type=int, default=32, help="sentences per batch")
    ap.add_argument("--repeats", type=int, default=3,
                    help="runs of each lmquant path, Python and CLI interleaved; the median is "
                         "reported (this VM's run-to-run noise is ~5-10%%)")
    ap.add_argument("--cli", default=os.environ.get("LMQUANT_CLI", "build/lmquant"))
    a = ap.parse_args()
    with open(os.path.join(a.data_dir, "wikitext-2", "test.txt")) as f:
        lines = f.read().splitlines()
    if a.lines:
        lines = lines[:a.lines]
    vocab = vocabulary(a.data_dir)
    sentences = [[vocab[w] for w in l.split()] for l in lines]
    tokens = sum(len(s) + 1 for s in sentences)
    name, isa = cpu_name()
    print(f"CPU: {name} ({isa}), {os.cpu_count()} cores, {torch.get_num_threads()} threads; "
          f"{len(lines)} lines, {tokens} tokens; lmquant {lmquant.__version__}, "
          f"torch {torch.__version__}")
    tmp = tempfile.mkdtemp()
    packed = os.path.join(tmp, "model.4b.lmq")
    model = lmquant.load(a.model, data_dir=a.data_dir)
    q = model.quantize(bits=4, clip="max", granularity="row")
    q.save_packed(packed)
    onnx_float, onnx_int8 = os.path.join(tmp, "model.onnx"), os.path.join(tmp, "model.4b.onnx")
    model.export_onnx(onnx_float)
    q.export_onnx(onnx_int8, int8=True)
    int8 = lmquant.load(packed, engine="int8", data_dir=a.data_dir)
    tlm = TorchLM(torch.load(a.model, map_location="cpu"))
    tq = torch.quantization.quantize_dynamic(tlm, {torch.nn.LSTM, torch.nn.Linear},
                                             dtype=torch.qint8)
    eos = vocab["<eos>"]
    rows = []

    # Each in-process path scores a few lines first (first-touch of buffers, thread start-up);
    # the CLI's start-up and first line are subtracted instead.
    warm = lines[:20]
    model.score(warm)
    int8.score(warm)
    torch_scores(tlm, sentences[:20], vocab["<eos>"], 1)
    torch_scores(tq, sentences[:20], vocab["<eos>"], 1)

    def add(what, batch, logprobs, seconds, note=""):
        rows.append((what, batch, len(lines) / seconds, tokens / seconds, sum(logprobs), note))

    def median(xs):
        return sorted(xs)[len(xs) // 2]

    for b in (1, a.batch):
        for kind, m, cli_args in (
                ("float", model, ["--model", a.model, "--data-dir", a.data_dir]),
                ("int8 engine", int8, ["--model", packed, "--engine", "int8"])):
            py, cl, start = [], [], []
            for _ in range(a.repeats):  # interleaved: a drift of the machine hits both alike
                r, s = timed(lambda: m.score(lines, batch_size=b, token_logprobs=False))
                py.append(s)
                lp, s, st = cli_seconds(a.cli, cli_args + ["--batch-size", str(b)], lines)
                cl.append(s)
                start.append(st)
            note = f"median of {a.repeats}" if a.repeats > 1 else ""
            add(f"lmquant Python, {kind}", b, [x.logprob for x in r], median(py), note)
            add(f"lmquant CLI, {kind}", b, lp, median(cl),
                f"{note}, less {median(start):.2f} s start + load".lstrip(", "))
        r, s = timed(lambda: torch_scores(tlm, sentences, eos, b))
        add("PyTorch loop, float", b, r, s)
        r, s = timed(lambda: torch_scores(tq, sentences, eos, b))
        add("PyTorch loop, dynamic int8", b, r, s)
        for kind, path in (("float", onnx_float), ("dynamic int8", onnx_int8)):
            o = ort_scores(path, sentences, eos, b)
            if o is None:
                print(f"ONNX Runtime, {kind}: skipped (Node.js or onnxruntime-node not installed)")
            else:
                add(f"ONNX Runtime, {kind}", b, o[0], o[1], "its runs only")
    print(f"\n| path | batch | sentences/s | tokens/s | Σ logprob | |\n|---|---|---|---|---|---|")
    for what, b, sps, tps, total, note in rows:
        print(f"| {what} | {b} | {sps:,.1f} | {tps:,.0f} | {total:,.1f} | {note} |")
    speed = {(w, b): t for w, b, _, t, _, _ in rows}
    print()
    best_torch = max(speed[("PyTorch loop, float", b)] for b in (1, a.batch))
    for b in (1, a.batch):
        for kind, cli_kind in (("float", "float"), ("int8 engine", "int8 engine")):
            r = speed[(f"lmquant Python, {kind}", b)] / speed[(f"lmquant CLI, {cli_kind}", b)]
            print(f"batch {b}: Python API / CLI, {kind}: {r:.3f} (goal >= 0.95)")
        print(f"batch {b}: lmquant int8 / PyTorch float loop: "
              f"{speed[('lmquant Python, int8 engine', b)] / speed[('PyTorch loop, float', b)]:.2f}x"
              f"; / PyTorch dynamic int8 loop: "
              f"{speed[('lmquant Python, int8 engine', b)] / speed[('PyTorch loop, dynamic int8', b)]:.2f}x"
              f"; / the best PyTorch loop (any batch): "
              f"{speed[('lmquant Python, int8 engine', b)] / best_torch:.2f}x"
              f" (goal batched >= 3x the PyTorch loop)")
        if ("ONNX Runtime, float", b) in speed:
            i8 = speed[("lmquant Python, int8 engine", b)]
            print(f"batch {b}: lmquant int8 / ONNX Runtime float: "
                  f"{i8 / speed[('ONNX Runtime, float', b)]:.2f}x; / ONNX Runtime dynamic int8: "
                  f"{i8 / speed[('ONNX Runtime, dynamic int8', b)]:.2f}x")
    # Every float path scores the same sentences: their totals agree to float rounding.
    f = [t for w, _, _, _, t, _ in rows if w.endswith("float")]
    spread = (max(f) - min(f)) / abs(min(f))
    print(f"float paths' Σ logprob agree to {spread:.1e} relative")
    if not math.isfinite(spread) or spread > 1e-4:
        sys.exit("the float paths disagree: a bug, not a speed")


if __name__ == "__main__":
    main()
