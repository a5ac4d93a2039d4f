"""The Python module (tools/python): same numbers as the CLI, quantize/evaluate/save, the int8
engine, and every bad input a Python exception. Run by CTest (python.pytest) with PYTHONPATH at
build/python and LMQUANT_CLI at build/lmquant; the real-data tests read LMQUANT_DATA."""
import json
import os
import signal
import subprocess
import tempfile
import threading

import pytest
import torch

import lmquant

HERE = os.path.dirname(os.path.abspath(__file__))
TINY = os.path.join(HERE, "..", "data", "tiny")
CLI = os.environ.get("LMQUANT_CLI", os.path.join(HERE, "..", "..", "build", "lmquant"))
SENTENCES = [
    "the cat sat on the mat .",
    "",
    "a sentence with words the tiny vocabulary never saw",
    "the the the the the",
    " spaces   between\twords ",
]


def cli(*args, stdin=None):
    r = subprocess.run([CLI, *args], input=stdin, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r.stdout


def cli_scores(model, lines, *extra):
    out = cli("score", "--model", model, "--corpus", TINY, *extra, stdin="\n".join(lines) + "\n")
    return [json.loads(l) for l in out.splitlines()]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    d = tmp_path_factory.mktemp("tiny")
    path = str(d / "tiny.lmq")
    cli("train", "-q", "--corpus", TINY, "--emb", "8", "--hidden", "8", "--epochs", "1",
        "--out", path)
    return path


@pytest.fixture(scope="module")
def packed(tiny, tmp_path_factory):
    path = str(tmp_path_factory.mktemp("packed") / "tiny.4b.lmq")
    cli("quantize", "-q", "--model", tiny, "--corpus", TINY, "--bits", "4", "--clip", "max",
        "--granularity", "row", "--save-packed", path)
    return path


def test_module_imports_with_a_version():
    assert lmquant.__version__.count(".") == 2
    assert torch.get_num_threads() >= 1


@pytest.mark.parametrize("batch", [1, 3])
def test_float_scores_equal_the_cli(tiny, batch):
    got = lmquant.load(tiny).score(SENTENCES, batch_size=batch)
    want = cli_scores(tiny, SENTENCES, "--batch-size", str(batch), "--token-logprobs")
    assert len(got) == len(want)
    for g, w in zip(got, want):
        # Equal to the last printed digit (JSON prints doubles in full).
        assert g.logprob == w["logprob"]
        assert g.perplexity == w["perplexity"]
        assert g.word_perplexity == w["word_perplexity"]
        assert (g.tokens, g.words, g.oov) == (w["tokens"], w["words"], w["oov"])
        assert g.token_logprobs.tolist() == w["token_logprobs"]
        assert g.as_dict() == {k: w[k] for k in g.as_dict()}


@pytest.mark.parametrize("batch", [1, 4])
def test_int8_engine_scores_equal_the_cli(packed, batch):
    model = lmquant.load(packed, engine="int8")
    assert model.engine == "int8" and model.format == "packed"
    got = model.score(SENTENCES, batch_size=batch)
    want = cli_scores(packed, SENTENCES, "--engine", "int8", "--batch-size", str(batch))
    assert [g.logprob for g in got] == [w["logprob"] for w in want]


def test_batches_change_a_score_by_rounding_only(tiny):
    model = lmquant.load(tiny)
    one = model.score(SENTENCES, batch_size=1)
    many = model.score(SENTENCES, batch_size=len(SENTENCES))
    for a, b in zip(one, many):
        assert a.logprob == pytest.approx(b.logprob, rel=1e-6)
        assert float(a.token_logprobs.sum()) == pytest.approx(a.logprob, rel=1e-12)


def test_quantize_evaluate_equals_quantize_json(tiny, tmp_path):
    model = lmquant.load(tiny)
    q = model.quantize(bits=3, clip="mse", granularity="row")
    assert q.label == "mse 3b row"
    assert [m["name"] for m in q.report][:1] == ["embedding"]
    assert q.quant_config["bits"] == 3
    got = lmquant.evaluate(q, corpus=TINY, split="valid")
    want = json.loads(cli("quantize", "--json", "-q", "--model", tiny, "--corpus", TINY,
                          "--split", "valid", "--bits", "3", "--clip", "mse",
                          "--granularity", "row"))
    for key in ["label", "perplexity", "loss", "float_perplexity", "delta_pct", "ci_low",
                "ci_high", "size_bits", "chunk_nll", "model_sha256", "split_sha256", "config"]:
        assert got[key] == want[key], key
    assert got["engine"] == "float"
    # The float model's record; the quantized model scores like the CLI's simulated file.
    f = lmquant.evaluate(model, corpus=TINY, split="valid")
    assert f["perplexity"] == want["float_perplexity"] and f["label"] == "float"
    path = str(tmp_path / "q.lmq")
    q.save_packed(path)
    assert [s.logprob for s in q.score(SENTENCES)] == [
        w["logprob"] for w in cli_scores(path, SENTENCES, "--batch-size", "32")]


def test_gptq_and_ocs_from_python(tiny):
    model = lmquant.load(tiny)
    g = model.quantize(bits=3, method="gptq", calib_sequences=8, calibration=TINY)
    assert g.quant_config["rounding"] == "gptq"
    o = model.quantize(bits=4, method="ocs", expand_ratio=0.1)
    assert any(m["split_channels"] > 0 for m in o.report)
    assert lmquant.evaluate(o, corpus=TINY, split="valid")["params_after"] > \
        lmquant.evaluate(model, corpus=TINY, split="valid")["params_after"]


def test_rotated_quantization_equals_the_cli(tiny, tmp_path):
    model = lmquant.load(tiny)
    q = model.quantize(bits=3, clip="mse", granularity="row", rotate=True, rotation_seed=3)
    assert q.label == "mse 3b row rot=3"
    assert q.quant_config["rotate"] and q.quant_config["rotation_seed"] == 3
    got = lmquant.evaluate(q, corpus=TINY, split="valid")
    want = json.loads(cli("quantize", "--json", "-q", "--model", tiny, "--corpus", TINY,
                          "--split", "valid", "--bits", "3", "--clip", "mse",
                          "--granularity", "row", "--rotate", "--rotation-seed", "3"))
    for key in ["label", "perplexity", "size_bits", "chunk_nll", "config"]:
        assert got[key] == want[key], key
    with pytest.raises(ValueError, match="not ocs"):
        model.quantize(bits=4, method="ocs", expand_ratio=0.1, rotate=True)


def test_fisher_decoder_equals_the_cli(tiny):
    # The decoder compensated row by row against the output distribution, with row widths:
    # the keyword and the flag give the same model and the same numbers.
    model = lmquant.load(tiny)
    q = model.quantize(bits=3, clip="mse", granularity="row", rounding="gptq",
                       calib_sequences=32, calibration=TINY, fisher_decoder=True,
                       row_widths=[2, 3, 4], row_budget=3.0)
    assert q.quant_config["fisher_decoder"]
    assert "+decoder(fisher)" in q.label
    got = lmquant.evaluate(q, corpus=TINY, split="valid")
    want = json.loads(cli("quantize", "--json", "-q", "--model", tiny, "--corpus", TINY,
                          "--split", "valid", "--bits", "3", "--clip", "mse",
                          "--granularity", "row", "--rounding", "gptq", "--calib-sequences",
                          "32", "--fisher-decoder", "--row-widths", "2,3,4",
                          "--row-budget", "3"))
    for key in ["label", "perplexity", "size_bits", "chunk_nll", "config"]:
        assert got[key] == want[key], key
    with pytest.raises(ValueError, match="choose one"):
        model.quantize(bits=3, rounding="gptq", fisher_decoder=True, gptq_decoder=True)


def test_decoder_bias_refit_equals_the_cli(tiny):
    # The decoder's bias refitted to the float model's output distribution: the keyword and the
    # flag give the same numbers, the record carries the calibration KL it descended, and the
    # packed file holds the refitted bias (its perplexity is the quantized model's).
    model = lmquant.load(tiny)
    q = model.quantize(bits=2, clip="mse", granularity="row", calib_sequences=32,
                       calibration=TINY, refit_decoder_bias=True)
    assert q.quant_config["refit_decoder_bias"]
    assert "+bias(refit)" in q.label
    got = lmquant.evaluate(q, corpus=TINY, split="valid")
    want = json.loads(cli("quantize", "--json", "-q", "--model", tiny, "--corpus", TINY,
                          "--split", "valid", "--bits", "2", "--clip", "mse",
                          "--granularity", "row", "--calib-sequences", "32",
                          "--refit-decoder-bias"))
    for key in ["label", "perplexity", "size_bits", "chunk_nll", "config", "bias_refit_kl"]:
        assert got[key] == want[key], key
    kl = got["bias_refit_kl"]
    assert len(kl) > 1 and kl[-1] < kl[0]
    plain = lmquant.evaluate(model.quantize(bits=2, clip="mse", granularity="row"),
                             corpus=TINY, split="valid")
    assert plain["size_bits"] == got["size_bits"]  # the bias is stored at 32 bits either way
    with tempfile.TemporaryDirectory() as d:
        q.save_packed(os.path.join(d, "q.lmq"))
        back = lmquant.evaluate(lmquant.load(os.path.join(d, "q.lmq")), corpus=TINY,
                                split="valid")
    assert abs(back["perplexity"] - got["perplexity"]) < 1e-6 * got["perplexity"]


def test_per_matrix_granularity_and_row_budget_equal_the_cli(tiny):
    # What the joint solver chooses (a granularity and a row budget per matrix) through the
    # keywords and through the flags: the same model and the same numbers.
    model = lmquant.load(tiny)
    q = model.quantize(bits=3, clip="mse", granularity="row", row_widths=[2, 3, 4],
                       row_budget=3.0, calibration=TINY, calib_sequences=32,
                       matrix_granularity={"input.l0": "group:4"},
                       matrix_row_budget={"embedding": 2.5, "decoder": 3.5})
    assert q.quant_config["matrix_granularity"] == {"input.l0": "group:4"}
    assert q.quant_config["matrix_row_budget"] == {"decoder": 3.5, "embedding": 2.5}
    got = lmquant.evaluate(q, corpus=TINY, split="valid")
    want = json.loads(cli("quantize", "--json", "-q", "--model", tiny, "--corpus", TINY,
                          "--split", "valid", "--bits", "3", "--clip", "mse",
                          "--granularity", "row", "--calib-sequences", "32",
                          "--row-widths", "2,3,4", "--row-budget", "3",
                          "--matrix-granularity", "input.l0=group:4",
                          "--matrix-row-budget", "embedding=2.5,decoder=3.5"))
    for key in ["label", "perplexity", "size_bits", "chunk_nll", "config"]:
        assert got[key] == want[key], key
    with pytest.raises(ValueError, match="matrix input.l0"):
        model.quantize(bits=3, granularity="row", row_widths=[2, 3, 4], row_budget=3.0,
                       calibration=TINY, matrix_row_budget={"input.l0": 3.0})


def test_row_alpha_factors_equal_the_cli(tiny):
    # Each row's α chosen by its own cost (src/quant/row_alpha.h): a list keyword, the CLI's
    # comma list; the record counts the rows at each factor.
    model = lmquant.load(tiny)
    q = model.quantize(bits=3, clip="mse", granularity="row", row_widths=[2, 3, 4],
                       row_budget=3.0, calibration=TINY, calib_sequences=32,
                       row_alpha_factors=[0.8, 1.0, 1.2])
    assert q.quant_config["row_alpha_factors"] == [0.8, 1.0, 1.2]
    vocab = [r for r in q.report if r["rows_at_bits"]]
    assert vocab and all(sum(r["rows_at_alpha_factor"].values()) == r["shape"][0] for r in vocab)
    got = lmquant.evaluate(q, corpus=TINY, split="valid")
    want = json.loads(cli("quantize", "--json", "-q", "--model", tiny, "--corpus", TINY,
                          "--split", "valid", "--bits", "3", "--clip", "mse",
                          "--granularity", "row", "--calib-sequences", "32",
                          "--row-widths", "2,3,4", "--row-budget", "3",
                          "--row-alpha-factors", "0.8,1,1.2"))
    for key in ["label", "perplexity", "size_bits", "chunk_nll", "config"]:
        assert got[key] == want[key], key


def test_main_job_from_python(tiny):
    job = lmquant.run_main_job(lmquant.load(tiny), corpus=TINY, bits=4, select_tokens=0,
                               roundings="nearest")
    assert job["recommendation"]["split"] == "test"
    assert job["reported"][0]["label"] == "float"
    assert job["recommendation"] == job["reported"][job["recommended"]]
    assert "valid" in job["selection"]


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        lmquant.load(str(tmp_path / "nothing.lmq"))
    assert "nothing.lmq" in str(e.value)
    bad = tmp_path / "corrupt.lmq"
    bad.write_bytes(b"LMQCKPT1" + b"\x10" * 64)
    with pytest.raises(RuntimeError, match="corrupt.lmq"):
        lmquant.load(str(bad))
    junk = tmp_path / "junk.pt"
    junk.write_bytes(os.urandom(4096))
    with pytest.raises(RuntimeError, match="junk.pt"):
        lmquant.load(str(junk))


def test_bad_score_inputs(tiny):
    model = lmquant.load(tiny)
    with pytest.raises(ValueError, match="non-empty list"):
        model.score([])
    with pytest.raises(TypeError, match=r"texts\[1\] is int, not str"):
        model.score(["fine", 3])
    with pytest.raises(TypeError, match="for one text pass"):
        model.score("a lone string")
    with pytest.raises(TypeError, match="not NoneType"):
        model.score(None)
    with pytest.raises(ValueError, match="batch_size"):
        model.score(["x"], batch_size=0)
    empty = model.score([""])[0]
    assert (empty.tokens, empty.words) == (1, 1)
    assert model.score(["x"], token_logprobs=False)[0].token_logprobs is None


def test_a_100k_word_text_is_scored(tiny):
    text = " ".join(["the", "cat", "sat"] * 33334)
    s = lmquant.load(tiny).score([text, "the cat"])[0]
    assert s.tokens == 100003 and s.token_logprobs.numel() == 100003
    assert float(s.token_logprobs.sum()) == pytest.approx(s.logprob, rel=1e-9)


def test_unknown_settings_list_the_valid_values(tiny):
    with pytest.raises(ValueError, match="valid values: float, int8"):
        lmquant.load(tiny, engine="int4")
    model = lmquant.load(tiny)
    with pytest.raises(ValueError, match="max"):
        model.quantize(clip="median")
    with pytest.raises(ValueError, match="tensor"):
        model.quantize(granularity="column")
    with pytest.raises(ValueError, match="clip, ocs"):
        model.quantize(method="magic")
    with pytest.raises(ValueError, match="bits"):
        model.quantize(bits=1)
    with pytest.raises(ValueError, match="already quantized"):
        model.quantize().quantize()
    with pytest.raises(RuntimeError, match="not a quantized or packed model"):
        lmquant.load(tiny, engine="int8")  # a float file has no codes for the engine


def test_ctrl_c_raises_keyboard_interrupt(tiny):
    model = lmquant.load(tiny)
    texts = [" ".join(["the cat sat"] * 3000)] * 400
    timer = threading.Timer(0.3, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        model.score(texts, batch_size=1)
    timer.join()
    assert model.score(["the cat"])[0].tokens == 3  # still usable; Python's handler is back
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


REAL = os.environ.get("LMQUANT_DATA", "")
REFERENCE = os.path.join(REAL, "..", "models", "wt2-lstm200", "model.pt")


@pytest.mark.skipif(not os.path.exists(os.path.join(REAL, "wikitext-2", "test.txt"))
                    or not os.path.exists(REFERENCE),
                    reason="real WikiText-2 and wt2-lstm200 not available: set LMQUANT_DATA")
def test_reference_model_scores_equal_the_cli(tmp_path):
    lines = open(os.path.join(REAL, "wikitext-2", "test.txt")).read().splitlines()[:60]
    model = lmquant.load(REFERENCE, data_dir=REAL)
    got = model.score(lines, batch_size=16)
    out = subprocess.run([CLI, "score", "--model", REFERENCE, "--data-dir", REAL,
                          "--batch-size", "16"], input="\n".join(lines) + "\n",
                         capture_output=True, text=True, check=True).stdout
    want = [json.loads(l)["logprob"] for l in out.splitlines()]
    assert [g.logprob for g in got] == want
    packed = str(tmp_path / "wt2.4b.lmq")
    model.quantize(bits=4, clip="max", granularity="row").save_packed(packed)
    got8 = lmquant.load(packed, engine="int8").score(lines, batch_size=16)
    out8 = subprocess.run([CLI, "score", "--model", packed, "--engine", "int8",
                           "--batch-size", "16"], input="\n".join(lines) + "\n",
                          capture_output=True, text=True, check=True).stdout
    assert [g.logprob for g in got8] == [json.loads(l)["logprob"] for l in out8.splitlines()]


def test_bits_per_weight_and_keywords_are_the_cli_options(tiny):
    # Model.quantize's keywords run through the CLI's own option groups (tools/options).
    model = lmquant.load(tiny)
    q = model.quantize(bits=4, clip="mse", granularity="row", grid="midrise",
                       row_widths=[1, 2, 3, 4, 7], bits_per_weight=10.0, calibration=TINY,
                       calib_sequences=16)
    # The tiny model reaches 8.7 to 11.7 bits per weight with rows of 1 to 7 bits.
    assert q.bits_per_weight == pytest.approx(10.0, abs=0.05)
    assert q.bits_per_weight <= 10.0 + 1e-9
    assert q.quant_config["bits_per_weight"] == 10.0
    got = lmquant.evaluate(q, corpus=TINY, split="valid")
    want = json.loads(cli("quantize", "--json", "-q", "--model", tiny, "--corpus", TINY,
                          "--split", "valid", "--bits", "4", "--clip", "mse",
                          "--granularity", "row", "--grid", "midrise", "--calib-sequences", "16",
                          "--row-widths", "1,2,3,4,7", "--bits-per-weight", "10"))
    for key in ["label", "perplexity", "size_bits", "config"]:
        assert got[key] == want[key], key
    with pytest.raises(ValueError, match="out of reach"):
        model.quantize(granularity="row", grid="midrise", row_widths=[1, 2], bits_per_weight=30.0,
                       calibration=TINY, calib_sequences=16)
    with pytest.raises(ValueError, match="unknown keyword 'bitz'.*bits_per_weight"):
        model.quantize(bitz=4)
    with pytest.raises(ValueError, match="^bits_per_weight|needs row widths"):
        model.quantize(bits_per_weight=3.0)
