"""lmquant export --onnx (#42): the graph passes ONNX's checker and, run in ONNX Runtime (the npm
package onnxruntime-node, through tools/onnx/ort_eval.js), gives lmquant's own perplexity to
1e-4 relative with the state carried chunk to chunk: a float model, a tied model, and a
packed 2-bit file (its dequantized weights: the simulated quantized model). Skipped where Node.js
or onnxruntime-node is absent (tools/setup.sh installs it into .cache/node)."""
import json
import os
import shutil
import subprocess

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
TINY = os.path.join(ROOT, "tests", "data", "tiny")
CLI = os.environ.get("LMQUANT_CLI", os.path.join(ROOT, "build", "lmquant"))
ORT_EVAL = os.path.join(ROOT, "tools", "onnx", "ort_eval.js")
NODE_PATH = os.environ.get("LMQUANT_NODE_PATH", os.path.join(ROOT, ".cache", "node", "node_modules"))
HAVE_ORT = shutil.which("node") is not None and os.path.exists(
    os.path.join(NODE_PATH, "onnxruntime-node", "package.json"))
needs_ort = pytest.mark.skipif(not HAVE_ORT, reason="Node.js or onnxruntime-node not installed "
                               "(tools/setup.sh installs it into .cache/node)")
SPLIT, BATCH, BPTT = "train", 2, 30


def cli(*args):
    r = subprocess.run([CLI, *args], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r.stdout


def lmquant_ppl(model):
    return json.loads(cli("eval", "--model", model, "--corpus", TINY, "--split", SPLIT, "--batch",
                          str(BATCH), "--bptt", str(BPTT), "--json"))


def ort_ppl(onnx_path, ids, batch=BATCH, bptt=BPTT):
    r = subprocess.run(["node", ORT_EVAL, onnx_path, ids, "--batch", str(batch), "--bptt",
                        str(bptt), "--threads", "1"], capture_output=True, text=True,
                       env=dict(os.environ, NODE_PATH=NODE_PATH))
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


@pytest.fixture(scope="module")
def ids(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("ids") / "train.ids")
    cli("corpus", "--corpus", TINY, "--write-ids", path, "--split", SPLIT)
    assert os.path.getsize(path) == 151 * 8  # the tiny train split: 151 ids as int64
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("onnx")
    out = {}
    out["float"] = str(d / "tiny.lmq")
    cli("train", "-q", "--corpus", TINY, "--emb", "12", "--hidden", "12", "--layers", "2",
        "--epochs", "1", "--out", out["float"])
    out["tied"] = str(d / "tied.lmq")
    cli("train", "-q", "--corpus", TINY, "--emb", "10", "--hidden", "10", "--layers", "1",
        "--tied", "--epochs", "1", "--out", out["tied"])
    out["packed"] = str(d / "tiny.2b.lmq")
    cli("quantize", "-q", "--model", out["float"], "--corpus", TINY, "--bits", "2", "--clip",
        "mse", "--granularity", "row", "--save-packed", out["packed"])
    # Layers of their own sizes (AWD-LSTM-like, tied to the 10-wide top layer).
    out["stack"] = str(d / "stack.lmq")
    cli("train", "-q", "--corpus", TINY, "--emb", "10", "--layer-hidden", "16,12,10", "--tied",
        "--epochs", "1", "--out", out["stack"])
    out["stack_packed"] = str(d / "stack.8b.lmq")
    cli("quantize", "-q", "--model", out["stack"], "--corpus", TINY, "--bits", "8", "--clip",
        "max", "--granularity", "row", "--save-packed", out["stack_packed"])
    return out


def test_the_exported_graph_passes_the_onnx_checker(models, tmp_path):
    onnx = pytest.importorskip("onnx")
    path = str(tmp_path / "m.onnx")
    cli("export", "--model", models["float"], "--onnx", path)
    m = onnx.load(path)
    onnx.checker.check_model(m, full_check=True)  # with shape inference
    assert [o.name for o in m.graph.output] == ["logprobs", "h_n", "c_n"]
    assert [n.op_type for n in m.graph.node].count("LSTM") == 2
    assert m.opset_import[0].version == 17


@needs_ort
@pytest.mark.parametrize("kind", ["float", "tied", "packed", "stack"])
def test_onnx_runtime_gives_lmquants_perplexity(models, ids, tmp_path, kind):
    path = str(tmp_path / (kind + ".onnx"))
    cli("export", "--model", models[kind], "--onnx", path)
    want = lmquant_ppl(models[kind])
    got = ort_ppl(path, ids)
    assert got["tokens"] == want["tokens"] == 148
    assert got["perplexity"] == pytest.approx(want["perplexity"], rel=1e-4)
    if kind == "packed":  # the quantized model, not the float one it came from
        float_ppl = lmquant_ppl(models["float"])["perplexity"]
        # (the tiny model is nearly a unigram model: 2 bits move it by ~0.5%, 50x the tolerance)
        assert abs(got["perplexity"] - float_ppl) > 1e-3 * float_ppl


def test_layers_of_their_own_sizes_keep_the_state_layout(models, tmp_path):
    onnx = pytest.importorskip("onnx")
    path = str(tmp_path / "stack.onnx")
    cli("export", "--model", models["stack"], "--onnx", path)
    m = onnx.load(path)
    onnx.checker.check_model(m, full_check=True)
    ops = [n.op_type for n in m.graph.node]
    assert ops.count("LSTM") == 3 and ops.count("Pad") == 4  # h_n, c_n of the 12- and 10-wide
    h0 = [d.dim_value or d.dim_param for d in m.graph.input[1].type.tensor_type.shape.dim]
    assert h0 == [3, "batch", 16]
    # An LSTMP model has no ONNX LSTM form: refused, naming why.
    lstmp = str(tmp_path / "lstmp.lmq")
    cli("train", "-q", "--corpus", TINY, "--emb", "6", "--hidden", "12", "--proj", "6",
        "--layers", "1", "--epochs", "1", "--out", lstmp)
    r = subprocess.run([CLI, "export", "--model", lstmp, "--onnx", str(tmp_path / "p.onnx")],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "no projection" in r.stderr, r.stderr


@needs_ort
def test_the_int8_form_of_a_layer_stack(models, ids, tmp_path):
    path = str(tmp_path / "stack.int8.onnx")
    cli("export", "--model", models["stack_packed"], "--onnx", path, "--int8")
    engine = json.loads(cli("eval", "--model", models["stack_packed"], "--engine", "int8",
                            "--corpus", TINY, "--split", SPLIT, "--batch", str(BATCH), "--bptt",
                            str(BPTT), "--json"))
    assert ort_ppl(path, ids)["perplexity"] == pytest.approx(engine["perplexity"], rel=0.01)


def test_export_errors_name_the_flag(models, tmp_path):
    r = subprocess.run([CLI, "export", "--model", models["float"], "--onnx",
                        str(tmp_path / "no" / "dir" / "m.onnx")], capture_output=True, text=True)
    assert r.returncode != 0 and r.stderr.startswith("error: ") and "--onnx" in r.stderr
    assert not os.path.exists(str(tmp_path / "no"))


@needs_ort
def test_the_int8_form_runs_lmquants_codes_in_onnx_runtime(models, ids, tmp_path):
    onnx = pytest.importorskip("onnx")
    path = str(tmp_path / "packed.int8.onnx")
    cli("export", "--model", models["packed"], "--onnx", path, "--int8")
    ops = [n.op_type for n in onnx.load(path).graph.node]
    assert ops.count("DynamicQuantizeLSTM") == 2 and "DynamicQuantizeMatMul" in ops
    assert "LSTM" not in ops and "MatMul" not in ops
    got = ort_ppl(path, ids)
    # ONNX Runtime quantizes the activations itself (per tensor, uint8), the int8 engine per row:
    # the same codes, near but not equal perplexities.
    engine = json.loads(cli("eval", "--model", models["packed"], "--engine", "int8", "--corpus",
                            TINY, "--split", SPLIT, "--batch", str(BATCH), "--bptt", str(BPTT),
                            "--json"))
    assert got["perplexity"] == pytest.approx(engine["perplexity"], rel=0.01)
    assert got["perplexity"] == pytest.approx(lmquant_ppl(models["packed"])["perplexity"],
                                              rel=0.01)


def test_zero_bit_rows_run_in_onnx_runtime(models, ids, tmp_path):
    # Rows given 0 bits (--row-widths 0,...) are the zero row: codes 0 and step 0 in the int8
    # form, as in the int8 engine and the simulated model.
    packed = str(tmp_path / "rows0.lmq")
    rec = json.loads(cli("quantize", "-q", "--model", models["float"], "--corpus", TINY,
                         "--bits", "4", "--clip", "mse", "--granularity", "row", "--row-widths",
                         "0,2,4", "--row-budget", "1", "--json", "--save-packed", packed))
    at = {m["name"]: m["rows_at_bits"] for m in rec["matrices"] if "rows_at_bits" in m}
    assert at["embedding"].get("0", 0) > 0 and at["decoder"].get("0", 0) > 0
    path = str(tmp_path / "rows0.int8.onnx")
    cli("export", "--model", packed, "--onnx", path, "--int8")
    got = ort_ppl(path, ids)
    engine = json.loads(cli("eval", "--model", packed, "--engine", "int8", "--corpus", TINY,
                            "--split", SPLIT, "--batch", str(BATCH), "--bptt", str(BPTT),
                            "--json"))
    assert got["perplexity"] == pytest.approx(engine["perplexity"], rel=0.01)
    assert got["perplexity"] == pytest.approx(lmquant_ppl(packed)["perplexity"], rel=0.01)


def test_the_int8_form_needs_row_codes_of_a_quantized_file(models, tmp_path):
    def refused(model, flag, *extra):
        r = subprocess.run([CLI, "export", "--model", model, "--onnx", str(tmp_path / "x.onnx"),
                            "--int8", *extra], capture_output=True, text=True)
        assert r.returncode != 0 and r.stderr.startswith("error: " + flag), r.stderr
        return r.stderr

    refused(models["float"], "--model")  # a float model has no codes
    grouped = str(tmp_path / "grouped.lmq")
    cli("quantize", "-q", "--model", models["float"], "--corpus", TINY, "--bits", "4",
        "--granularity", "group:4", "--save-quantized", grouped)
    assert "one step per row" in refused(grouped, "--int8")
    assert not os.path.exists(str(tmp_path / "x.onnx"))


@needs_ort
def test_python_exports_what_the_cli_exports(models, ids, tmp_path):
    lmquant = pytest.importorskip("lmquant")
    q = lmquant.load(models["float"]).quantize(bits=3, clip="mse", granularity="row")
    path = str(tmp_path / "q.onnx")
    q.export_onnx(path)
    # The quantize() result's simulated model, in ONNX Runtime: lmquant.evaluate's perplexity
    # (its protocol: batch 10, bptt 35).
    want = lmquant.evaluate(q, corpus=TINY, split=SPLIT)["perplexity"]
    assert ort_ppl(path, ids, 10, 35)["perplexity"] == pytest.approx(want, rel=1e-4)
    q.export_onnx(str(tmp_path / "q8.onnx"), int8=True)
    assert ort_ppl(str(tmp_path / "q8.onnx"), ids, 10, 35)["perplexity"] == pytest.approx(
        want, rel=0.01)
    with pytest.raises(ValueError, match="needs quantized codes"):
        lmquant.load(models["float"]).export_onnx(str(tmp_path / "f8.onnx"), int8=True)
