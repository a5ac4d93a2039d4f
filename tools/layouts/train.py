#!/usr/bin/python3
"""Trains a small LSTM LM of one layout (tools/layouts/layouts.py) on WikiText-2 in PyTorch, the
way its trainer would, and saves it the way that trainer saves (the README's "Bring your own
model" examples are made with it):

  lstmp   torch.save(model.state_dict())            (pytorch/examples names, nn.LSTM proj_size)
  awd     torch.save([model, criterion, optimizer])  (salesforce/awd-lstm-lm's main.py)
  fastai  torch.save({'model': state_dict, 'opt': ...})  (fastai's Learner.save)

Ids are pytorch/examples data.Corpus's (one dictionary over train, valid, test; <eos> per line),
which are lmquant's word ids. Training: pytorch/examples' recipe (SGD, lr 20, clip 0.25, batch
20, bptt 35), for --batches batches. Prints PyTorch's own valid and test perplexity with
pytorch/examples' evaluate() (batch 10, bptt 35, hidden carried) as JSON.

  /usr/bin/python3 tools/layouts/train.py --layout awd --data DIR/wikitext-2 --out awd.pt
"""
import argparse
import json
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import layouts  # noqa: E402


def detach(h):
    if isinstance(h, torch.Tensor):
        return h.detach()
    return type(h)(detach(x) for x in h)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--layout", choices=["lstmp", "awd", "fastai"], required=True)
    p.add_argument("--data", required=True, help="folder holding train.txt, valid.txt, test.txt")
    p.add_argument("--out", required=True)
    p.add_argument("--emb", type=int, default=200)
    p.add_argument("--hidden", type=int, default=400)
    p.add_argument("--proj", type=int, default=200, help="lstmp: the projection size")
    p.add_argument("--layers", type=int, default=3)
    p.add_argument("--untied", action="store_true")
    p.add_argument("--batches", type=int, default=600)
    p.add_argument("--lr", type=float, default=20.0)
    p.add_argument("--seed", type=int, default=1111)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    ntokens, splits = layouts.corpus_ids(a.data)
    tied = not a.untied
    if a.layout == "lstmp":
        model = layouts.LstmpModel(ntokens, a.proj if tied else a.emb, a.hidden, a.proj, a.layers,
                                   tie_weights=tied)
    elif a.layout == "awd":
        model = layouts.RNNModel(ntokens, a.emb, a.hidden, a.layers, wdrop=0.2, tie_weights=tied)
    else:
        enc = layouts.AWD_LSTM(ntokens, a.emb, a.hidden, a.layers)
        model = layouts.SequentialRNN(enc, layouts.LinearDecoder(
            ntokens, a.emb, tie_encoder=enc.encoder if tied else None))
    opt = torch.optim.SGD(model.parameters(), lr=a.lr)
    train = layouts.batchify(splits["train"], 20)
    model.train()
    hidden = model.init_hidden(20)
    t0 = time.time()
    for b, i in enumerate(range(0, train.size(0) - 1, 35)):
        if b == a.batches:
            break
        seq = min(35, train.size(0) - 1 - i)
        hidden = detach(hidden)
        out, hidden = model(train[i:i + seq], hidden)
        loss = F.nll_loss(out, train[i + 1:i + 1 + seq].reshape(-1))
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 0.25)
        opt.step()
        if (b + 1) % 100 == 0:
            print("batch %d loss %.3f (%.0f s)" % (b + 1, loss.item(), time.time() - t0),
                  file=sys.stderr, flush=True)
    train_s = time.time() - t0
    model.eval()
    if a.layout == "awd":
        torch.save([model, nn.CrossEntropyLoss(), opt], a.out)
    elif a.layout == "fastai":
        torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, a.out)
    else:
        torch.save(model.state_dict(), a.out)
    print(json.dumps({"layout": a.layout, "out": a.out, "tied": tied, "batches": a.batches,
                      "train_seconds": round(train_s, 1),
                      "parameters": sum(p.numel() for p in model.parameters()),
                      "valid_perplexity": layouts.perplexity(model, splits["valid"]),
                      "test_perplexity": layouts.perplexity(model, splits["test"])}))


if __name__ == "__main__":
    main()
