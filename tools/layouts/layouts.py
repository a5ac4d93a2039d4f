"""The module trees of the LSTM LM layouts lmquant imports (lm/pytorch_layout.h), re-created
from their trainers' code (class and attribute names are what torch.save pickles and what the
state_dict keys are made of; the forward passes are what the trainers run in eval mode):

  LstmpModel     pytorch/examples word_language_model's names with nn.LSTM(proj_size=P)
  RNNModel       salesforce/awd-lstm-lm: one nn.LSTM per layer, WeightDrop (weight_hh_l0_raw)
  SequentialRNN  fastai: AWD_LSTM (WeightDropout, EmbeddingDropout) + LinearDecoder

Used by tests/python/test_layouts.py, test_pytorch_files.py and tools/layouts/train.py. Every
model has forward(x [T, B], hidden) -> (log-probabilities [T*B, V], hidden) and
init_hidden(batch). Beside them, pytorch/examples' data.Corpus ids and evaluate() perplexity.
"""
import math
import os

import torch
import torch.nn as nn
import torch.nn.functional as F


class LstmpModel(nn.Module):
    """word_language_model's names with a projected LSTM (ESPnet/Kaldi-style LSTMP LMs)."""

    def __init__(self, ntoken, ninp, nhid, nproj, nlayers, tie_weights=False):
        super().__init__()
        self.encoder = nn.Embedding(ntoken, ninp)
        self.rnn = nn.LSTM(ninp, nhid, nlayers, proj_size=nproj)
        self.decoder = nn.Linear(nproj, ntoken)
        if tie_weights:
            self.decoder.weight = self.encoder.weight
        self.sizes = [(nlayers, nproj), (nlayers, nhid)]

    def forward(self, x, hidden):
        out, hidden = self.rnn(self.encoder(x), hidden)
        return F.log_softmax(self.decoder(out).view(-1, self.decoder.out_features), 1), hidden

    def init_hidden(self, bsz):
        w = self.encoder.weight
        return tuple(w.new_zeros(n, bsz, h) for n, h in self.sizes)


class LockedDropout(nn.Module):
    def forward(self, x, dropout=0.5):
        if not self.training or not dropout:
            return x
        m = x.new_empty(1, x.size(1), x.size(2)).bernoulli_(1 - dropout) / (1 - dropout)
        return x * m


class WeightDrop(nn.Module):
    """awd-lstm-lm's: the recurrent weight lives on as <name>_raw, dropped into <name> per call."""

    def __init__(self, module, weights, dropout=0.0):
        super().__init__()
        self.module, self.weights, self.dropout = module, weights, dropout
        for name in weights:
            w = getattr(module, name)
            del module._parameters[name]
            module.register_parameter(name + "_raw", nn.Parameter(w.data))

    def forward(self, *args):
        for name in self.weights:
            raw = getattr(self.module, name + "_raw")
            setattr(self.module, name, F.dropout(raw, p=self.dropout, training=self.training))
        return self.module.forward(*args)


class RNNModel(nn.Module):
    """awd-lstm-lm's LSTM RNNModel: one nn.LSTM per layer, the last one ninp wide when tied."""

    def __init__(self, ntoken, ninp, nhid, nlayers, wdrop=0.5, tie_weights=False):
        super().__init__()
        self.lockdrop = LockedDropout()
        self.encoder = nn.Embedding(ntoken, ninp)
        self.rnns = [nn.LSTM(ninp if l == 0 else nhid,
                             nhid if l != nlayers - 1 else (ninp if tie_weights else nhid), 1)
                     for l in range(nlayers)]
        if wdrop:
            self.rnns = [WeightDrop(r, ["weight_hh_l0"], dropout=wdrop) for r in self.rnns]
        self.rnns = nn.ModuleList(self.rnns)
        self.decoder = nn.Linear(nhid, ntoken)
        if tie_weights:
            self.decoder.weight = self.encoder.weight
        self.sizes = [r.hidden_size for r in
                      (m.module if isinstance(m, WeightDrop) else m for m in self.rnns)]

    def forward(self, x, hidden):
        out = self.lockdrop(self.encoder(x), 0.0)
        new = []
        for rnn, h in zip(self.rnns, hidden):
            out, nh = rnn(out, h)
            new.append(nh)
        logits = self.decoder(out).view(-1, self.decoder.out_features)
        return F.log_softmax(logits, 1), new

    def init_hidden(self, bsz):
        w = self.encoder.weight
        return [(w.new_zeros(1, bsz, s), w.new_zeros(1, bsz, s)) for s in self.sizes]


class EmbeddingDropout(nn.Module):
    def __init__(self, emb):
        super().__init__()
        self.emb = emb


class WeightDropout(nn.Module):
    """fastai v2's: weight_hh_l0_raw on the wrapper, a plain copy set on the LSTM per call."""

    def __init__(self, module, layer_names=("weight_hh_l0",)):
        super().__init__()
        self.module, self.layer_names = module, list(layer_names)
        for layer in self.layer_names:
            w = getattr(self.module, layer)
            delattr(self.module, layer)
            self.register_parameter(layer + "_raw", nn.Parameter(w.data))
            setattr(self.module, layer, w.data.clone())

    def forward(self, *args):
        for layer in self.layer_names:
            setattr(self.module, layer, getattr(self, layer + "_raw") * 1.0)
        return self.module(*args)


class AWD_LSTM(nn.Module):
    def __init__(self, vocab_sz, emb_sz, n_hid, n_layers):
        super().__init__()
        self.encoder = nn.Embedding(vocab_sz, emb_sz)
        self.encoder_dp = EmbeddingDropout(self.encoder)
        self.rnns = nn.ModuleList([
            WeightDropout(nn.LSTM(emb_sz if l == 0 else n_hid,
                                  n_hid if l != n_layers - 1 else emb_sz, 1, batch_first=True))
            for l in range(n_layers)])
        self.sizes = [n_hid if l != n_layers - 1 else emb_sz for l in range(n_layers)]


class LinearDecoder(nn.Module):
    def __init__(self, n_out, n_hid, tie_encoder=None):
        super().__init__()
        self.decoder = nn.Linear(n_hid, n_out)
        if tie_encoder is not None:
            self.decoder.weight = tie_encoder.weight


class SequentialRNN(nn.Sequential):
    def forward(self, x, hidden):
        enc = self[0]
        out = enc.encoder(x.t())  # fastai runs batch first
        new = []
        for rnn, h in zip(enc.rnns, hidden):
            out, nh = rnn(out, h)
            new.append(nh)
        logits = self[1].decoder(out.transpose(0, 1))
        return F.log_softmax(logits.reshape(-1, logits.size(-1)), 1), new

    def init_hidden(self, bsz):
        w = self[0].encoder.weight
        return [(w.new_zeros(1, bsz, s), w.new_zeros(1, bsz, s)) for s in self[0].sizes]


def corpus_ids(folder):
    """pytorch/examples data.Corpus: one dictionary over train, valid, test (in that order), each
    line's words then <eos> (lmquant's word ids). Returns (vocabulary size, {split: ids})."""
    words, splits = {}, {}
    for split in ("train", "valid", "test"):
        ids = []
        with open(os.path.join(folder, split + ".txt"), encoding="utf8") as f:
            for line in f:
                for w in line.split() + ["<eos>"]:
                    ids.append(words.setdefault(w, len(words)))
        splits[split] = torch.tensor(ids, dtype=torch.long)
    return len(words), splits


def batchify(data, bsz):
    n = data.size(0) // bsz
    return data[:n * bsz].view(bsz, -1).t().contiguous()


def perplexity(model, data, batch=10, bptt=35):
    """pytorch/examples main.py's evaluate(): batchify, chunks of bptt, hidden carried."""
    data = batchify(data, batch)
    model.eval()
    total = 0.0
    hidden = model.init_hidden(batch)
    with torch.no_grad():
        for i in range(0, data.size(0) - 1, bptt):
            seq = min(bptt, data.size(0) - 1 - i)
            out, hidden = model(data[i:i + seq], hidden)
            total += seq * F.nll_loss(out, data[i + 1:i + 1 + seq].reshape(-1)).item()
    return math.exp(total / (data.size(0) - 1))
