"""lmquant: post-training quantization of LSTM language models, measured in perplexity.

The same library as the `lmquant` command line, with the same numbers:

>>> import lmquant
>>> model = lmquant.load("wt2-lstm200/model.pt")            # PyTorch state_dict, .lmq, packed
>>> scores = model.score(["the cat sat on the mat ."])       # one lmquant.Score per text
>>> q = model.quantize(bits=4, clip="mse", granularity="row")
>>> record = lmquant.evaluate(q, split="valid")              # dict: quantize --json's schema
>>> q.save_packed("model.4b.lmq")
>>> int8 = lmquant.load("model.4b.lmq", engine="int8")       # the int8 engine
>>> int8.score(["the cat sat on the mat ."])[0].logprob

Importing lmquant sets LibTorch's intra-op threads to the number of cores, as the CLI does
(Debian's LibTorch starts with one); torch.set_num_threads(n) overrides it.
"""
import torch  # noqa: F401  (loads LibTorch and its Python types first)

from ._lmquant import Model, Score, __version__, evaluate, load, run_main_job

__all__ = ["Model", "Score", "__version__", "evaluate", "load", "run_main_job"]
