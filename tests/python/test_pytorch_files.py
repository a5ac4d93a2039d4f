"""PyTorch files as users have them (#40): pytorch/examples word_language_model's own RNNModel,
re-created here, saved the ways PyTorch saves (torch.save(model.state_dict()) -- an OrderedDict --,
torch.save(model) -- the pickled module tree --, a checkpoint dict, DataParallel's "module."
prefix, a trainer's "lm." prefix), evaluated by lmquant to PyTorch's own perplexity on the tiny
corpus with pytorch/examples' evaluate() (batchify, bptt chunks, hidden carried). Nothing downloaded,
no weights committed: the models are made here with a fixed seed."""
import importlib
import json
import os
import subprocess
import sys

import pytest
import torch
import torch.nn as nn

from helpers import CLI, HERE, TINY, assert_refused, cli

# pytorch/examples word_language_model/model.py's RNNModel (LSTM branch), re-created: the class
# name, module names and attributes are what torch.save(model) pickles.
MODEL_PY = '''
import torch.nn as nn
import torch.nn.functional as F


class RNNModel(nn.Module):
    def __init__(self, rnn_type, ntoken, ninp, nhid, nlayers, dropout=0.5, tie_weights=False):
        super(RNNModel, self).__init__()
        self.ntoken = ntoken
        self.drop = nn.Dropout(dropout)
        self.encoder = nn.Embedding(ntoken, ninp)
        self.rnn = getattr(nn, rnn_type)(ninp, nhid, nlayers, dropout=dropout)
        self.decoder = nn.Linear(nhid, ntoken)
        if tie_weights:
            self.decoder.weight = self.encoder.weight
        self.init_weights()
        self.rnn_type = rnn_type
        self.nhid = nhid
        self.nlayers = nlayers

    def init_weights(self):
        nn.init.uniform_(self.encoder.weight, -0.1, 0.1)
        nn.init.zeros_(self.decoder.bias)
        nn.init.uniform_(self.decoder.weight, -0.1, 0.1)

    def forward(self, input, hidden):
        emb = self.drop(self.encoder(input))
        output, hidden = self.rnn(emb, hidden)
        output = self.drop(output)
        decoded = self.decoder(output).view(-1, self.ntoken)
        return F.log_softmax(decoded, dim=1), hidden

    def init_hidden(self, bsz):
        weight = next(self.parameters())
        return (weight.new_zeros(self.nlayers, bsz, self.nhid),
                weight.new_zeros(self.nlayers, bsz, self.nhid))
'''


# pytorch/examples' data.Corpus ids and evaluate(), shared with the layout tests.
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools", "layouts"))
import layouts  # noqa: E402


def corpus_ids():
    return layouts.corpus_ids(TINY)


def pytorch_perplexity(model, data, batch=10, bptt=35):
    return layouts.perplexity(model, data, batch, bptt)


@pytest.fixture(scope="module")
def rnn_model_class(tmp_path_factory):
    d = tmp_path_factory.mktemp("examples")
    (d / "model.py").write_text(MODEL_PY)
    sys.path.insert(0, str(d))
    try:
        yield importlib.import_module("model").RNNModel
    finally:
        sys.path.remove(str(d))
        sys.modules.pop("model", None)


# The tiny corpus's longest split in 2 streams of 3 chunks: the hidden state carried across chunks.
SPLIT, BATCH, BPTT = "train", 2, 30


def lmquant_eval(path):
    return json.loads(cli("eval", "--model", path, "--corpus", TINY, "--split", SPLIT, "--batch",
                          str(BATCH), "--bptt", str(BPTT), "--json"))


@pytest.mark.parametrize("tied", [False, True])
def test_every_way_pytorch_saves_a_model_loads_to_pytorchs_perplexity(rnn_model_class, tmp_path,
                                                                       tied):
    ntokens, splits = corpus_ids()
    torch.manual_seed(7)
    model = rnn_model_class("LSTM", ntokens, 16, 16, 2, dropout=0.2, tie_weights=tied)
    # Not the initial weights only: a few steps of training make every matrix matter.
    opt = torch.optim.SGD(model.parameters(), lr=5.0)
    model.train()
    n = splits["train"].numel() // 4 * 4
    train = splits["train"][:n].view(4, -1).t()
    for _ in range(20):  # perplexity 75 (uniform) -> 48 untied
        out, _ = model(train[:-1], model.init_hidden(4))
        loss = nn.functional.nll_loss(out, train[1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    want = pytorch_perplexity(model, splits[SPLIT], BATCH, BPTT)
    assert want < 0.8 * ntokens  # trained: far from the uniform model's perplexity

    files = {}
    files["state_dict"] = tmp_path / "sd.pt"
    torch.save(model.state_dict(), files["state_dict"])  # an OrderedDict with _metadata
    files["model"] = tmp_path / "model.pt"
    torch.save(model, files["model"])  # what main.py writes: the pickled model.RNNModel
    files["checkpoint"] = tmp_path / "ckpt.pt"
    torch.save({"epoch": 3, "state_dict": model.state_dict(), "optimizer": opt.state_dict()},
               files["checkpoint"])
    files["data_parallel"] = tmp_path / "dp.pt"
    torch.save(nn.DataParallel(model), files["data_parallel"])  # names under "module."
    files["prefixed"] = tmp_path / "prefixed.pt"
    torch.save({"lm." + k: v for k, v in model.state_dict().items()}, files["prefixed"])
    files["protocol4"] = tmp_path / "p4.pt"
    torch.save(model, files["protocol4"], pickle_protocol=4)
    files["awd_list"] = tmp_path / "awd.pt"  # awd-lstm's main.py: [model, criterion, optimizer]
    torch.save([model, nn.CrossEntropyLoss(), opt], files["awd_list"])

    found = {
        "state_dict": "a state_dict (OrderedDict)",
        "model": "a pickled model.RNNModel (torch.save(model))",
        "checkpoint": "a state_dict (OrderedDict) in entry 'state_dict'",
        "data_parallel": "a pickled torch.nn.parallel.data_parallel.DataParallel",
        "prefixed": "a plain dict of tensors, word-lm layout, names under 'lm.'",
        "protocol4": "a pickled model.RNNModel (torch.save(model))",
        "awd_list": "a pickled model.RNNModel (torch.save(model)) as item 0 of a list, word-lm "
                    "layout; ignored item 1 (a torch.nn.modules.loss.CrossEntropyLoss object); ignored item 2 "
                    "(a torch.optim.sgd.SGD object)",
    }
    for kind, path in files.items():
        got = lmquant_eval(str(path))
        assert got["format"] == "pytorch"
        assert got["config"]["tied"] == tied, kind
        assert got["config"]["layers"] == 2
        assert got["tokens"] == 148
        assert got["perplexity"] == pytest.approx(want, rel=1e-5), kind
        assert got["source"].startswith(found[kind]), (kind, got["source"])
    assert "ignored entry 'epoch'; ignored entry 'optimizer'" in lmquant_eval(
        str(files["checkpoint"]))["source"]
    assert "names under 'module.'" in lmquant_eval(str(files["data_parallel"]))["source"]


def test_files_that_are_not_a_word_language_model_are_named(rnn_model_class, tmp_path):
    ntokens, _ = corpus_ids()
    model = rnn_model_class("LSTM", ntokens, 8, 8, 1, dropout=0)

    def refused(obj, *fragments, **save_kw):
        assert_refused(obj, tmp_path / "x.pt", *fragments, **save_kw)

    sd = model.state_dict()
    # A key lmquant does not understand is an error naming it, never dropped.
    refused(dict(sd, **{"rnn.weight_xx_l0": torch.zeros(8, 8)}), "rnn.weight_xx_l0")
    # A projection as wide as its cell is no nn.LSTM(proj_size=P) (P < hidden): named.
    refused(dict(sd, **{"rnn.weight_hr_l0": torch.zeros(8, 8)}), "layer_proj[0]")
    refused({"a": sd, "b": sd}, "'a', 'b'", "each hold a model")
    refused({"epoch": 3}, "hold no tensors")
    refused([1, 2], "holds a list")
    refused(("x", {"epoch": 3}), "holds a tuple")
    refused(sd, "legacy format", "re-save", _use_new_zipfile_serialization=False)
    sd16 = {k: v.half() for k, v in sd.items()}
    path = tmp_path / "half.pt"
    torch.save(sd16, path)  # half precision weights load (converted to float)
    assert lmquant_eval(str(path))["config"]["emb"] == 8


def test_a_pickled_model_quantizes_packs_and_runs_in_the_int8_engine(rnn_model_class, tmp_path):
    ntokens, splits = corpus_ids()
    torch.manual_seed(3)
    model = rnn_model_class("LSTM", ntokens, 16, 16, 2, dropout=0.2, tie_weights=True)
    path = str(tmp_path / "model.pt")
    torch.save(model, path)
    want = pytorch_perplexity(model, splits[SPLIT], BATCH, BPTT)
    data = ["--corpus", TINY, "--split", SPLIT, "--batch", str(BATCH), "--bptt", str(BPTT)]
    for method in (["--method", "ocs", "--expand-ratio", "0.1"], ["--method", "gptq", "--rotate"]):
        q = json.loads(cli("quantize", "-q", "--json", "--model", path, "--corpus", TINY,
                           "--bits", "8", *method))
        assert q["label"].startswith(method[1]), q["label"]
        assert q["model_desc"] == "2x16 LSTM, emb 16, vocab %d, tied" % ntokens
        assert q["perplexity"] == pytest.approx(q["float_perplexity"], rel=0.02)
    packed = str(tmp_path / "model.8b.lmq")
    cli("quantize", "-q", "--model", path, "--corpus", TINY, "--bits", "8", "--clip", "max",
        "--granularity", "row", "--save-packed", packed)
    got = json.loads(cli("eval", "--model", packed, "--engine", "int8", "--json", *data))
    # 8-bit weights and int8 activations: within 2% of PyTorch's float perplexity.
    assert got["perplexity"] == pytest.approx(want, rel=0.02)


def test_a_vocabulary_that_comes_with_the_model(rnn_model_class, tmp_path):
    """A model whose ids are not pytorch/examples' (sorted words, an <unk> the corpus never
    uses): --vocab FILE gives it its own ids, and lmquant's perplexity is PyTorch's."""
    _, splits = corpus_ids()
    words = set()
    for split in ("train", "valid", "test"):
        with open(os.path.join(TINY, split + ".txt"), encoding="utf8") as f:
            for line in f:
                words.update(line.split())
    words -= {"the", "<unk>", "<eos>"}  # "the" becomes an unknown word: the model's <unk>
    itos = ["<unk>"] + sorted(words) + ["<eos>"]
    stoi = {w: i for i, w in enumerate(itos)}
    ids = []
    with open(os.path.join(TINY, SPLIT + ".txt"), encoding="utf8") as f:
        for line in f:
            ids += [stoi.get(w, 0) for w in line.split()] + [stoi["<eos>"]]
    torch.manual_seed(5)
    model = rnn_model_class("LSTM", len(itos), 12, 12, 2, dropout=0.0)
    want = pytorch_perplexity(model, torch.tensor(ids), BATCH, BPTT)
    path = str(tmp_path / "model.pt")
    torch.save(model, path)
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(itos) + "\n")
    got = json.loads(cli("eval", "--model", path, "--vocab", str(vocab), "--corpus", TINY,
                         "--split", SPLIT, "--batch", str(BATCH), "--bptt", str(BPTT), "--json"))
    assert got["perplexity"] == pytest.approx(want, rel=1e-5)
    counts = json.loads(cli("corpus", "--corpus", TINY, "--vocab", str(vocab), "--json"))
    assert counts["vocab"] == len(itos)
    assert counts["oov"]["train"] == sum(line.split().count("the")
                                         for line in open(os.path.join(TINY, "train.txt")))
    # The record names the vocabulary it was evaluated with.
    rec = json.loads(cli("quantize", "-q", "--json", "--model", path, "--vocab", str(vocab),
                         "--corpus", TINY, "--bits", "8"))
    assert len(rec["vocab_sha256"]) == 64
    # Python takes the same file (lmquant.load(vocab=...)): its scores are the CLI's.
    lmquant = pytest.importorskip("lmquant")
    lines = ["the cat sat on the mat .", "a sentence with words the tiny vocabulary never saw"]
    got = lmquant.load(path, corpus=TINY, vocab=str(vocab)).score(lines)
    r = subprocess.run([CLI, "score", "--model", path, "--corpus", TINY, "--vocab", str(vocab)],
                       input="\n".join(lines) + "\n", capture_output=True, text=True, check=True)
    want = [json.loads(l) for l in r.stdout.splitlines()]
    assert [g.logprob for g in got] == [w["logprob"] for w in want]
    assert [g.oov for g in got] == [sum(w not in stoi for w in l.split()) for l in lines]
    assert got[0].oov >= 2  # "the" twice at least: the model's <unk>
    # Without it the corpus's own vocabulary does not fit the model: refused, not mis-scored.
    r = subprocess.run([CLI, "eval", "--model", path, "--corpus", TINY], capture_output=True,
                       text=True)
    assert r.returncode != 0 and "vocabulary of %d words" % len(itos) in r.stderr
