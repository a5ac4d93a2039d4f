"""LSTM LMs laid out as their trainers lay them out (#40), re-created here with their module
structure (nothing downloaded, no weights committed; the models are made with a fixed seed and a
few training steps): pytorch/examples' RNNModel with an LSTMP layer (nn.LSTM(proj_size=P)),
salesforce/awd-lstm-lm's RNNModel (one nn.LSTM per layer, WeightDrop, 400 -> 1150 -> 400-like
sizes), fastai's AWD_LSTM + LinearDecoder in a SequentialRNN. Each must load, evaluate to
PyTorch's own perplexity (pytorch/examples' evaluate(): batchify, bptt chunks, hidden carried),
quantize with every method, pack, and run in the int8 engine; inspect lists its matrices."""
import json
import math
import os
import subprocess
import sys

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from helpers import CLI, HERE, TINY, assert_refused, cli

# The three layouts' module trees, pytorch/examples' ids and evaluate() live in
# tools/layouts/layouts.py (shared with its train.py).
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools", "layouts"))
import layouts as L  # noqa: E402


def corpus_ids():
    return L.corpus_ids(TINY)


def pytorch_perplexity(model, data, batch, bptt):
    return L.perplexity(model, data, batch, bptt)


def train_a_little(model, ids, steps=15, lr=3.0):
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    model.train()
    n = ids.numel() // 4 * 4
    data = ids[:n].view(4, -1).t()
    for _ in range(steps):
        out, _ = model(data[:-1], model.init_hidden(4))
        loss = F.nll_loss(out, data[1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()


@pytest.fixture(scope="module")
def layouts():
    return L


SPLIT, BATCH, BPTT = "train", 2, 30


def make(layouts, kind, tied, ntokens):
    if kind == "lstmp":
        # 2 layers of 20 cells projected to 8; tied: the embedding is 8 wide too.
        return layouts.LstmpModel(ntokens, 8 if tied else 12, 20, 8, 2, tie_weights=tied)
    if kind == "awd":  # 3 layers: 10 -> 24 -> 24 -> 10 (tied) or 24 (untied)
        return layouts.RNNModel(ntokens, 10, 24, 3, wdrop=0.3, tie_weights=tied)
    enc = layouts.AWD_LSTM(ntokens, 10, 24, 3)  # fastai: 10 -> 24 -> 24 -> 10
    return layouts.SequentialRNN(enc, layouts.LinearDecoder(
        ntokens, 10, tie_encoder=enc.encoder if tied else None))


EXPECTED = {  # (describe, source fragment)
    "lstmp": ("2x20 LSTMP (proj 8,8)", "word-lm layout"),
    "awd": ("{awd}", "awd-lstm layout"),
    "fastai": ("3-layer LSTM 24,24,10", "fastai layout"),
}


def save_as_its_trainer_does(model, kind, path):
    if kind == "awd":  # awd-lstm's main.py: torch.save([model, criterion, optimizer])
        torch.save([model, nn.CrossEntropyLoss(), torch.optim.SGD(model.parameters(), lr=1)],
                   path)
    elif kind == "fastai":  # Learner.save: {'model': state_dict, 'opt': ...}
        torch.save({"model": model.state_dict(), "opt": {"state": {}}}, path)
    else:
        torch.save(model.state_dict(), path)


@pytest.mark.parametrize("kind", ["lstmp", "awd", "fastai"])
@pytest.mark.parametrize("tied", [False, True])
def test_each_layout_evaluates_to_pytorchs_perplexity(layouts, tmp_path, kind, tied):
    ntokens, splits = corpus_ids()
    torch.manual_seed(11)
    model = make(layouts, kind, tied, ntokens)
    train_a_little(model, splits["train"])
    want = pytorch_perplexity(model, splits[SPLIT], BATCH, BPTT)
    assert want < 0.8 * ntokens
    path = str(tmp_path / "m.pt")
    save_as_its_trainer_does(model, kind, path)
    got = json.loads(cli("eval", "--model", path, "--corpus", TINY, "--split", SPLIT, "--batch",
                         str(BATCH), "--bptt", str(BPTT), "--json"))
    desc, source = EXPECTED[kind]
    desc = desc.format(awd="3-layer LSTM 24,24,10" if tied else "3x24 LSTM, emb 10")
    assert got["model_desc"].startswith(desc), got["model_desc"]
    assert got["config"]["tied"] == tied
    assert source in got["source"], got["source"]
    assert got["perplexity"] == pytest.approx(want, rel=1e-5)
    if kind == "awd":
        # An eval pass leaves WeightDrop's copy beside _raw: set aside, named.
        model(splits[SPLIT][:5].view(-1, 1), model.init_hidden(1))
        save_as_its_trainer_does(model, kind, path)
        got = json.loads(cli("eval", "--model", path, "--corpus", TINY, "--split", SPLIT,
                             "--batch", str(BATCH), "--bptt", str(BPTT), "--json"))
        assert got["perplexity"] == pytest.approx(want, rel=1e-5)
        assert "ignored rnns.0.module.weight_hh_l0 (the copy of " in got["source"]
    if kind == "fastai":
        assert "ignored 0.encoder_dp.emb.weight (EmbeddingDropout's alias" in got["source"]


@pytest.mark.parametrize("kind", ["lstmp", "awd", "fastai"])
def test_each_layout_quantizes_packs_and_runs_in_the_int8_engine(layouts, tmp_path, kind):
    ntokens, splits = corpus_ids()
    torch.manual_seed(5)
    model = make(layouts, kind, True, ntokens)
    train_a_little(model, splits["train"])
    want = pytorch_perplexity(model, splits[SPLIT], BATCH, BPTT)
    path = str(tmp_path / "m.pt")
    save_as_its_trainer_does(model, kind, path)
    listing = cli("inspect", "--model", path, "--png", str(tmp_path / "h.png"))
    for name in ("embedding+decoder", "input.l0", "recurrent.l1"):
        assert "\n" + name + " " in listing, listing
    if kind == "lstmp":
        assert "\nprojection.l1 " in listing
    data = ["--corpus", TINY, "--split", SPLIT, "--batch", str(BATCH), "--bptt", str(BPTT)]
    for method in (["--method", "clip", "--clip", "mse"],
                   ["--method", "ocs", "--expand-ratio", "0.1"],
                   ["--method", "gptq", "--rotate"],
                   ["--method", "gptq", "--granularity", "row", "--row-widths", "4,8",
                    "--row-budget", "6", "--fisher-decoder", "--gptq-embedding"]):
        q = json.loads(cli("quantize", "-q", "--json", "--model", path, "--bits", "8", *method,
                           "--corpus", TINY))
        names = [m["name"] for m in q["matrices"]]
        if kind == "lstmp":
            assert "projection.l0" in names and "projection.l1" in names, names
        assert q["perplexity"] == pytest.approx(q["float_perplexity"], rel=0.03), method
    packed = str(tmp_path / "m.8b.lmq")
    cli("quantize", "-q", "--model", path, "--corpus", TINY, "--bits", "8", "--clip", "max",
        "--granularity", "row", "--save-packed", packed)
    got = json.loads(cli("eval", "--model", packed, "--engine", "int8", "--json", *data))
    assert got["perplexity"] == pytest.approx(want, rel=0.02)
    sim = json.loads(cli("eval", "--model", packed, "--json", *data))
    assert got["perplexity"] == pytest.approx(sim["perplexity"], rel=0.01)


def test_layout_errors_name_the_key(layouts, tmp_path):
    ntokens, _ = corpus_ids()
    torch.manual_seed(1)
    sd = make(layouts, "awd", False, ntokens).state_dict()

    def refused(obj, *fragments):
        assert_refused(obj, tmp_path / "x.pt", *fragments)

    refused(dict(sd, **{"rnns.1.module.weight_xx_l0": torch.zeros(3)}),
            "rnns.1.module.weight_xx_l0", "not an LSTM weight")
    bad = dict(sd)
    bad["rnns.0.module.weight_hh_l0"] = sd["rnns.0.module.weight_hh_l0_raw"] * 0.5
    refused(bad, "rnns.0.module.weight_hh_l0 differs from rnns.0.module.weight_hh_l0_raw")
    refused(dict(sd, **{"rnn.weight_ih_l0": torch.zeros(4, 4)}), "both rnn.* and rnns.*")


def test_lmquant_trains_any_layer_stack(tmp_path):
    """lmquant train --layer-hidden/--proj: AWD-LSTM-like sizes and an LSTMP layer, trained,
    saved, reloaded, resumed from --init."""
    out = str(tmp_path / "stack.lmq")
    cli("train", "-q", "--corpus", TINY, "--emb", "6", "--layer-hidden", "16,10", "--proj", "0,6",
        "--tied", "--epochs", "1", "--batch", "4", "--bptt", "10", "--out", out)
    got = json.loads(cli("eval", "--model", out, "--corpus", TINY, "--json"))
    assert got["config"]["layer_hidden"] == [16, 10]
    assert got["config"]["layer_proj"] == [0, 6]
    assert got["model_desc"] == "2-layer LSTMP 16,10 (proj 0,6), emb 6, vocab 75, tied"
    assert math.isfinite(got["perplexity"]) and got["perplexity"] < 75
    again = str(tmp_path / "again.lmq")
    cli("train", "-q", "--corpus", TINY, "--init", out, "--lr-schedule", "1", "--batch", "4",
        "--bptt", "10", "--out", again)
    assert json.loads(cli("eval", "--model", again, "--corpus", TINY, "--json"))["config"] == \
        got["config"]
    for bad, msg in ((["--layer-hidden", "16,x"], "--layer-hidden"),
                     (["--layer-hidden", "16,10", "--proj", "0,10"], "layer_proj[1]"),
                     (["--layer-hidden", "16,10", "--emb", "7", "--tied"], "tied weights need")):
        r = subprocess.run([CLI, "train", "-q", "--corpus", TINY, "--out", str(tmp_path / "x"),
                            *bad], capture_output=True, text=True)
        assert r.returncode != 0 and r.stderr.startswith("error: ") and msg in r.stderr, r.stderr
