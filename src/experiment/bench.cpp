#include "experiment/bench.h"

#include <ATen/Parallel.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/native/quantized/PackedParams.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>

#include "corpus/batching.h"
#include "corpus/spm_tokenizer.h"
#include "corpus/word_tokenizer.h"
#include "engine/int8_engine.h"
#include "experiment/bench_ceilings.h"
#include "export/onnx_export.h"
#include "export/onnx_runtime.h"
#include "lm/evaluate.h"
#include "lm/matrices.h"
#include "lm/nll.h"
#include "lm/train.h"
#include "quant/ocs.h"
#include "quant/quantize_model.h"
#include "util/atomic_file.h"

namespace lmquant {
namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

double rss_mib() {
  std::ifstream f("/proc/self/statm");
  long pages = 0, resident = 0;
  f >> pages >> resident;
  return resident * (sysconf(_SC_PAGESIZE) / 1048576.0);
}
double peak_rss_mib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss / 1024.0;
}

// Measured single-precision matrix-product rate (GFLOP/s) of this machine and thread count.
double gemm_gflops() {
  torch::NoGradGuard g;
  auto a = torch::randn({1024, 1024}), b = torch::randn({1024, 1024});
  (void)torch::mm(a, b);
  const auto t0 = Clock::now();
  const int reps = 8;
  for (int i = 0; i < reps; ++i) (void)torch::mm(a, b);
  return 2.0 * 1024 * 1024 * 1024 * reps / since(t0) / 1e9;
}

// Where one T x B chunk's time goes in the int8 engine: the whole decoder (Int8Decoder::nll:
// quantizing h, the integer products, dequantizing, the running log-sum-exp) and the whole int8
// LSTM, against their integer products alone on the same codes, shapes and threads (the
// decoder's in the engine's 1024-column blocks, one run of blocks per thread; per layer W_ih on
// T·B rows and T steps of W_hh on B rows). The difference is what runs outside the products.
struct ChunkSplit {
  double decoder = 0, decoder_products = 0, lstm = 0, lstm_products = 0;  // seconds per chunk
  double outside_share() const { return 1 - (decoder_products + lstm_products) / (decoder + lstm); }
};

ChunkSplit int8_chunk_split(const QuantizedModel& qm, const torch::Tensor& bias,
                            const Int8Lstm& lstm, int64_t T, int64_t B) {
  torch::NoGradGuard g;
  const auto& cfg = qm.folded->config();
  const int64_t N = T * B;
  auto tensor = [&](const std::string& name) -> const QuantizedMatrix& {
    for (const auto& t : qm.tensors)
      if (t.name == name) return t;
    throw std::logic_error("bench: " + name + " is not quantized");
  };
  auto timed = [](const std::function<void()>& f) {
    f();  // warm-up
    const auto t = Clock::now();
    for (int i = 0; i < 10; ++i) f();
    return since(t) / 10;
  };
  torch::manual_seed(11);
  ChunkSplit out;
  const QuantizedMatrix& d = tensor(matrix_covering(cfg, MatrixKind::kDecoder).name);
  const Int8Decoder dec(d, bias);
  const Int8Linear dw(d, "bench");
  const auto h = torch::tanh(torch::randn({N, dw.cols()}));
  const auto y = torch::randint(dw.rows(), {N}, torch::kLong);
  out.decoder = timed([&] { dec.nll(h, y); });
  const auto qh = quantize_rows_int8(h).first;
  const int64_t V = dw.rows(), block = 1024, blocks = (V + block - 1) / block;
  const int64_t runs = std::min<int64_t>(blocks, std::max(1, at::get_num_threads()));
  out.decoder_products = timed([&] {
    at::parallel_for(0, runs, 1, [&](int64_t rb, int64_t re) {
      std::vector<int32_t> acc(static_cast<size_t>(N * block));
      for (int64_t run = rb; run < re; ++run)
        for (int64_t k = blocks * run / runs; k < blocks * (run + 1) / runs; ++k)
          dw.products(qh.data_ptr<int8_t>(), N, k * block, std::min(block, V - k * block),
                      acc.data());
    });
  });
  std::vector<Int8Linear> ih, hh, hr;
  int64_t widest = 0;
  for (int64_t l = 0; l < cfg.layers; ++l) {
    const auto s = std::to_string(l);
    ih.emplace_back(tensor("input.l" + s), "bench");
    hh.emplace_back(tensor("recurrent.l" + s), "bench");
    hr.push_back(cfg.proj(l) > 0 ? Int8Linear(tensor("projection.l" + s), "bench") : Int8Linear());
    widest = std::max({widest, ih.back().cols(), hh.back().cols(), 4 * cfg.cell(l)});
  }
  std::vector<int32_t> acc(static_cast<size_t>(N * widest));
  const auto qx = quantize_rows_int8(torch::tanh(torch::randn({N, widest}))).first;
  out.lstm_products = timed([&] {
    for (int64_t l = 0; l < cfg.layers; ++l) {
      const auto L = static_cast<size_t>(l);
      const int64_t G = 4 * cfg.cell(l);
      ih[L].products(qx.data_ptr<int8_t>(), N, 0, G, acc.data());
      for (int64_t t = 0; t < T; ++t) {
        hh[L].products(qx.data_ptr<int8_t>(), B, 0, G, acc.data());
        if (cfg.proj(l) > 0) hr[L].products(qx.data_ptr<int8_t>(), B, 0, cfg.proj(l), acc.data());
      }
    }
  });
  const auto tokens = torch::randint(V, {T, B}, torch::kLong);
  out.lstm = timed([&] {
    LstmState st{torch::zeros({cfg.layers, B, cfg.state_h_width()}),
                 torch::zeros({cfg.layers, B, cfg.state_c_width()})};
    lstm.hidden_states(tokens, st);
  });
  return out;
}

// Loss, perplexity and speed of a timed evaluation from its sums (total_nll, tokens).
EvalResult finish(EvalResult r, Clock::time_point t0) {
  r.loss = r.total_nll / r.tokens;
  r.perplexity = perplexity_of_loss(r.loss);
  r.seconds = since(t0);
  r.tokens_per_s = r.tokens / r.seconds;
  return r;
}

// The baseline: what a plain LibTorch loop does.
EvalResult eval_baseline(LstmLm& model, const torch::Tensor& stream, int64_t batch, int64_t bptt) {
  const auto t0 = Clock::now();
  torch::NoGradGuard g;
  model->eval();
  auto data = batchify(stream, batch).to(model->device());
  auto state = model->init_state(batch);
  EvalResult r;
  for (int64_t i = 0; i < data.size(0) - 1; i += bptt) {
    auto c = get_batch(data, i, bptt);
    auto logits = model->forward(c.data, state);
    r.total_nll += torch::cross_entropy_loss(logits, c.targets).item<double>() * c.targets.numel();
    r.tokens += c.targets.numel();
  }
  return finish(r, t0);
}

// LibTorch's own dynamic-int8 path, the baseline of the int8 engine: every W_ih, W_hh and the
// decoder prepacked by quantized::linear_prepack (weights int8 per output channel, the scheme of
// lmquant's per-row codes) on the ONEDNN quantized engine and applied with apply_dynamic
// (quantized::linear_dynamic: activations quantized on the fly, int32 accumulation); input
// products of a chunk in one call, the recurrent ones per step, the gates and log_softmax in
// LibTorch ops. (PyTorch's quantized LSTM applies W_ih per step too; hoisting it only helps the
// baseline.) The embedding stays a float lookup.
class TorchDynamicInt8 {
 public:
  explicit TorchDynamicInt8(const LstmLm& m) : model_(m) {
    at::globalContext().setQEngine(at::QEngine::ONEDNN);
    auto prepack = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("quantized::linear_prepack", "")
                       .typed<c10::intrusive_ptr<LinearPackedParamsBase>(
                           at::Tensor, c10::optional<at::Tensor>)>();
    auto pack = [&](const torch::Tensor& w, c10::optional<at::Tensor> b) {
      auto scale = (w.abs().amax(1) / 127.0).clamp_min(1e-12).to(torch::kDouble);
      auto zero = torch::zeros({w.size(0)}, torch::kLong);
      return prepack.call(at::quantize_per_channel(w.contiguous(), scale, zero, 0, torch::kQInt8),
                          b);
    };
    for (int64_t l = 0; l < m->config().layers; ++l) {
      ih_.push_back(pack(m->w_ih[l], m->b_ih[l]));
      hh_.push_back(pack(m->w_hh[l], m->b_hh[l]));
      hr_.push_back(m->w_hr[l].defined() ? pack(m->w_hr[l], c10::nullopt)
                                         : c10::intrusive_ptr<LinearPackedParamsBase>());
    }
    dec_ = pack(m->decoder_weight, m->decoder_bias);
  }
  size_t bytes() const {               // int8 weights + fp32 biases held by the packs (approximate)
    const auto& c = model_->config();  // one byte per matrix weight (the decoder's included)
    return static_cast<size_t>(macs_per_token(*model_) + c.vocab * c.emb * 4);  // + float table
  }
  EvalResult eval(const torch::Tensor& stream, int64_t batch, int64_t bptt) {
    const auto t0 = Clock::now();
    torch::NoGradGuard g;
    auto data = batchify(stream, batch);
    auto state = model_->init_state(batch);
    EvalResult r;
    const auto& cfg = model_->config();
    for (int64_t i = 0; i < data.size(0) - 1; i += bptt) {
      auto c = get_batch(data, i, bptt);
      const int64_t T = c.data.size(0);
      auto x = torch::embedding(model_->encoder, c.data).reshape({T * batch, -1});
      std::vector<torch::Tensor> hs, cs;
      for (size_t l = 0; l < ih_.size(); ++l) {
        const auto k = static_cast<int64_t>(l);
        auto xp = ih_[l]->apply_dynamic(x).view({T, batch, 4 * cfg.cell(k)});
        auto h = layer_h(cfg, state, k), cc = layer_c(cfg, state, k);
        std::vector<torch::Tensor> outs;
        for (int64_t t = 0; t < T; ++t) {
          auto gates = (xp[t] + hh_[l]->apply_dynamic(h)).chunk(4, 1);
          cc = torch::sigmoid(gates[1]) * cc + torch::sigmoid(gates[0]) * torch::tanh(gates[2]);
          h = torch::sigmoid(gates[3]) * torch::tanh(cc);
          if (hr_[l]) h = hr_[l]->apply_dynamic(h);
          outs.push_back(h);
        }
        x = torch::stack(outs).view({T * batch, cfg.output(k)});
        hs.push_back(h);
        cs.push_back(cc);
      }
      state = stack_state(cfg, hs, cs);
      auto lp = torch::log_softmax(dec_->apply_dynamic(x), 1);
      r.total_nll += -lp.gather(1, c.targets.view({-1, 1})).sum().item<double>();
      r.tokens += c.targets.numel();
    }
    return finish(r, t0);
  }

 private:
  LstmLm model_;
  std::vector<c10::intrusive_ptr<LinearPackedParamsBase>> ih_, hh_,
      hr_;  // hr_: null for a layer without projection
  c10::intrusive_ptr<LinearPackedParamsBase> dec_;
};

size_t float_weight_bytes(const LstmLmImpl& m) {
  return static_cast<size_t>(stored_parameter_count(m)) * sizeof(float);  // the tied one once
}

}  // namespace

bool BenchOptions::has(const std::string& part) const {
  return ("," + what + ",").find("," + part + ",") != std::string::npos;
}

void BenchOptions::validate() const {
  const std::string valid = "tokenize, eval, ceilings, engine, train, quant, gptq";
  std::stringstream in(what);
  for (std::string part; std::getline(in, part, ',');)
    if (("," + std::string("tokenize,eval,ceilings,engine,train,quant,gptq") + ",")
                .find("," + part + ",") == std::string::npos ||
        part.empty())
      throw std::invalid_argument("unknown benchmark '" + part + "'; valid values: " + valid);
}

BenchResult run_bench(const BenchOptions& o, const std::function<Corpus()>& load,
                      const std::function<LstmLm(const Corpus&)>& make_model) {
  nlohmann::json out = {{"threads", at::get_num_threads()}};
  std::ostringstream table;
  const double rss0 = rss_mib();
  const auto t0 = Clock::now();
  Corpus corpus = load();
  const double tok_s = since(t0);
  out["tokenize"] = {{"seconds", tok_s},
                     {"rss_before_mib", rss0},
                     {"rss_after_mib", rss_mib()},
                     {"peak_rss_mib", peak_rss_mib()},
                     {"tokens", corpus.train.numel() + corpus.valid.numel() + corpus.test.numel()},
                     {"note", "locate + SHA-256 verify + tokenize train, valid and test"}};
  if (o.has("tokenize"))
    table << "tokenize all splits: " << tok_s << " s, resident " << rss0 << " -> " << rss_mib()
          << " MiB (peak " << peak_rss_mib() << " MiB)\n";
  if (o.has("tokenize") && corpus.tokenizer != "word") {
    // The train split alone: sentencepiece encoding vs the word tokenizer (the baseline).
    const std::string train_txt = corpus.location.dir + "/train.txt";
    const std::string text = read_file(train_txt);
    auto t1 = Clock::now();
    Vocab v;
    const auto word_ids = tokenize_text(text, v, train_txt);
    const double word_s = since(t1);
    const SpmTokenizer spm = SpmTokenizer::load(corpus.tokenizer_path);
    t1 = Clock::now();
    int64_t pieces = 0;
    for_each_line(text, [&](std::string_view line) { pieces += spm.encode(line).size() + 1; });
    const double spm_s = since(t1);
    out["tokenize_spm_train"] = {{"spm_seconds", spm_s},
                                 {"word_seconds", word_s},
                                 {"pieces", pieces},
                                 {"words", static_cast<int64_t>(word_ids.size())},
                                 {"ratio_spm_over_word", spm_s / word_s}};
    table << "encode train split: sentencepiece " << spm_s << " s (" << pieces << " pieces, "
          << pieces / spm_s / 1e6 << " M/s) vs word tokenizer " << word_s << " s ("
          << spm_s / word_s << "x)\n";
  }

  LstmLm model = make_model(corpus);
  const auto& cfg = model->config();
  if (o.has("eval")) {
    auto stream = corpus.test.narrow(0, 0, std::min<int64_t>(o.eval_tokens, corpus.test.numel()));
    const double peak = gemm_gflops();
    EvalResult base = eval_baseline(model, stream, 10, 35);
    EvalResult ours = evaluate(model, stream, EvalOptions{});
    const double flops = 2.0 * static_cast<double>(macs_per_token(*model));
    out["eval"] = {{"model", cfg.describe()},
                   {"tokens", ours.tokens},
                   {"baseline_tokens_per_s", base.tokens_per_s},
                   {"lmquant_tokens_per_s", ours.tokens_per_s},
                   {"ratio", ours.tokens_per_s / base.tokens_per_s},
                   {"baseline_perplexity", base.perplexity},
                   {"lmquant_perplexity", ours.perplexity},
                   {"flop_per_token", flops},
                   {"gemm_gflops_ceiling", peak},
                   {"fraction_of_ceiling", ours.tokens_per_s * flops / (peak * 1e9)},
                   {"peak_rss_mib", peak_rss_mib()}};
    table << "eval " << cfg.describe() << ", " << ours.tokens << " tokens, batch 10:\n"
          << "  baseline (LibTorch loop) " << base.tokens_per_s << " tok/s, ppl " << base.perplexity
          << "\n  lmquant                  " << ours.tokens_per_s << " tok/s, ppl "
          << ours.perplexity << "\n  ratio " << ours.tokens_per_s / base.tokens_per_s << "x; "
          << 100 * ours.tokens_per_s * flops / (peak * 1e9) << "% of the measured " << peak
          << " GFLOP/s matrix-product ceiling\n";
    // The decoder and softmax alone on one chunk's top states [350, H]: LibTorch (addmm +
    // log_softmax + gather), addmm + lmquant's one-pass NLL, and the vocabulary-blocked
    // decoder_nll; GFLOP/s of the decoder product (2·N·H·V) against the same ceiling.
    torch::NoGradGuard g;
    const int64_t N = 350, reps = 10;
    auto h = torch::randn({N, model->decoder_weight.size(1)}) * 0.5;
    auto y = torch::randint(0, cfg.vocab, {N}, torch::kLong);
    const auto& W = model->decoder_weight;
    const auto& b = model->decoder_bias;
    auto time_it = [&](const std::function<double()>& f) {
      double v = f();  // warm-up (allocations, page faults)
      const auto t = Clock::now();
      for (int64_t i = 0; i < reps; ++i) v += f();
      (void)v;
      return since(t) / reps;
    };
    const double t_torch = time_it([&] {
      auto lp = torch::log_softmax(torch::addmm(b, h, W.t()), 1);
      return -lp.gather(1, y.view({-1, 1})).sum().item<double>();
    });
    const double t_two = time_it([&] { return sum_nll(torch::addmm(b, h, W.t()), y); });
    const double t_blocked = time_it([&] { return decoder_nll(h, W, b, y); });
    // The int8 engine's decoder (engine/int8_decoder.h) on the same rows, weights at 8 bits per
    // row; the quantization itself is not timed.
    QuantConfig q8;
    q8.bits = 8;
    q8.granularity = Granularity::kRow;
    q8.targets = {Target::kDecoder};
    const QuantizedModel qm8 = quantize_model(model, q8);
    Int8Decoder int8(qm8.tensors.at(0), b);
    const double t_int8 = time_it([&] { return int8.nll(h, y); });
    const double dflop = 2.0 * N * W.size(1) * W.size(0);
    out["decoder"] = {{"rows", N},
                      {"libtorch_seconds", t_torch},
                      {"addmm_nll_seconds", t_two},
                      {"blocked_seconds", t_blocked},
                      {"blocked_gflops", dflop / t_blocked / 1e9},
                      {"blocked_fraction_of_ceiling", dflop / t_blocked / (peak * 1e9)},
                      {"speedup_vs_libtorch", t_torch / t_blocked},
                      {"int8_seconds", t_int8},
                      {"int8_speedup_vs_blocked_float", t_blocked / t_int8}};
    table << "  decoder + softmax of " << N << " rows: LibTorch " << t_torch * 1e3
          << " ms, addmm + one-pass NLL " << t_two * 1e3 << " ms, vocabulary-blocked "
          << t_blocked * 1e3 << " ms (" << t_torch / t_blocked << "x LibTorch; "
          << dflop / t_blocked / 1e9 << " GFLOP/s = " << 100 * dflop / t_blocked / (peak * 1e9)
          << "% of the ceiling)\n"
          << "  int8 decoder (8-bit codes per row, activations per row, oneDNN s8 x s8 -> s32) "
          << t_int8 * 1e3 << " ms: " << t_blocked / t_int8 << "x the blocked float decoder\n";
  }
  if (o.has("ceilings")) {
    const CeilingsResult c = measure_ceilings(cfg.vocab, cfg.top());
    out["ceilings"] = c.json;
    table << c.text;
  }
  if (o.has("engine")) {
    // The int8 engine (engine/int8_engine.h) against the float paths and LibTorch's own
    // dynamic-int8 path, all on the same tokens in this process: every matrix quantized at
    // `engine_bits` per row (round to nearest, max), the simulated model being those weights
    // dequantized and run in float.
    auto stream = corpus.test.narrow(0, 0, std::min<int64_t>(o.eval_tokens, corpus.test.numel()));
    QuantConfig q;
    q.bits = o.engine_bits;
    q.granularity = Granularity::kRow;
    const QuantizedModel qm = quantize_model(model, q);
    auto file = [](const QuantizedModel& m) {
      QuantizedFile f;
      f.loaded.model = std::static_pointer_cast<LstmLmImpl>(m.folded->clone_model());
      f.loaded.path = "bench";
      f.matrices = m.tensors;
      return f;
    };
    LstmLm sim = qm.folded;
    const EvalResult base = eval_baseline(sim, stream, 10, 35);
    const EvalResult fl = evaluate(sim, stream, EvalOptions{});
    QuantizedFile fd = file(qm), fi = file(qm);
    EvalOptions od, oi;
    od.engine = int8_engine(fd, /*lstm=*/false);
    oi.engine = int8_engine(fi, /*lstm=*/true, /*release_float=*/true);
    const EvalResult dec = evaluate(fd.loaded.model, stream, od);
    const EvalResult i8 = evaluate(fi.loaded.model, stream, oi);
    // The same codes' recipe with every matrix rotated first (quant/rotation.h): the engine then
    // rotates h once per step and layer and the decoder's input once per chunk.
    QuantConfig qr = q;
    qr.rotate = true;
    const QuantizedModel qmr = quantize_model(model, qr);
    QuantizedFile fr = file(qmr);
    EvalOptions orot;
    orot.engine = int8_engine(fr, /*lstm=*/true, /*release_float=*/true);
    const EvalResult i8r = evaluate(fr.loaded.model, stream, orot);
    LstmLm simr = qmr.folded;
    const EvalResult flr = evaluate(simr, stream, EvalOptions{});
    TorchDynamicInt8 td(sim);
    const EvalResult tq = td.eval(stream, 10, 35);
    // ONNX Runtime (export/onnx_runtime.h) on the simulated model exported as ONNX, same tokens,
    // same threads; skipped with the reason where Node.js or onnxruntime-node is absent.
    // Then the same codes as ONNX Runtime's own dynamic-int8 form (DynamicQuantizeLSTM,
    // DynamicQuantizeMatMul: export/onnx_export.h).
    OnnxRuntimeResult ort, ort8;
    {
      char dir_template[] = "/tmp/lmquant_bench_XXXXXX";
      if (const char* dir = mkdtemp(dir_template)) {
        const std::string path = std::string(dir) + "/sim.onnx";
        save_onnx(path, *sim);
        ort = onnx_runtime_eval(path, stream, 10, 35, torch::get_num_threads());
        if (ort.ran) {
          save_onnx(path, *sim, &qm.tensors);
          ort8 = onnx_runtime_eval(path, stream, 10, 35, torch::get_num_threads());
        } else {
          ort8.why_not = ort.why_not;
        }
        std::filesystem::remove_all(dir);
      } else {
        ort.why_not = ort8.why_not = "no temporary folder";
      }
    }
    // The LSTM alone on one chunk (35 x 10 tokens or what the stream has, state carried):
    // LibTorch's fused LSTM op on the simulated weights vs the int8 LSTM.
    double t_lstm_float = 0, t_lstm_int8 = 0;
    const Int8Lstm lstm(fd);  // fd keeps its codes (its engine runs only the decoder in int8)
    {
      torch::NoGradGuard g;
      auto rows = batchify(stream, 10);
      auto tokens = rows.narrow(0, 0, std::min<int64_t>(35, rows.size(0))).contiguous();
      auto time_lstm = [&](const std::function<torch::Tensor(LstmState&)>& f) {
        auto st = sim->init_state(10);
        f(st);  // warm-up
        const auto t = Clock::now();
        for (int i = 0; i < 20; ++i) f(st);
        return since(t) / 20;
      };
      t_lstm_float = time_lstm([&](LstmState& st) { return sim->hidden_states(tokens, st); });
      t_lstm_int8 = time_lstm([&](LstmState& st) { return lstm.hidden_states(tokens, st); });
    }
    ChunkSplit split = int8_chunk_split(qm, qm.folded->decoder_bias, lstm, 35, 10);
    // Weight memory the engine holds (a tied matrix is held twice: gather rows and decoder).
    size_t int8_bytes = lstm.bytes();
    for (const auto& t : qm.tensors)
      if (find_matrix(cfg, t.name).covers(MatrixKind::kDecoder))
        int8_bytes += Int8Decoder(t, qm.folded->decoder_bias).bytes();
    auto row = [&](const EvalResult& r) {
      return nlohmann::json{
          {"tokens_per_s", r.tokens_per_s}, {"perplexity", r.perplexity}, {"seconds", r.seconds}};
    };
    auto ort_row = [](const OnnxRuntimeResult& r) {
      return r.ran ? nlohmann::json{{"tokens_per_s", r.tokens_per_s},
                                    {"perplexity", r.perplexity},
                                    {"seconds", r.seconds},
                                    {"version", r.version}}
                   : nlohmann::json{{"skipped", r.why_not}};
    };
    out["engine"] = {{"model", cfg.describe()},
                     {"tokens", i8.tokens},
                     {"bits", q.bits},
                     {"libtorch_float", row(base)},
                     {"lmquant_float_simulated", row(fl)},
                     {"int8_decoder_only", row(dec)},
                     {"int8", row(i8)},
                     {"int8_rotated", row(i8r)},
                     {"lmquant_float_simulated_rotated", row(flr)},
                     {"int8_rotated_over_int8", i8r.tokens_per_s / i8.tokens_per_s},
                     {"libtorch_dynamic_int8", row(tq)},
                     {"onnxruntime_float", ort_row(ort)},
                     {"onnxruntime_dynamic_int8", ort_row(ort8)},
                     {"int8_over_lmquant_float", i8.tokens_per_s / fl.tokens_per_s},
                     {"int8_over_libtorch_float", i8.tokens_per_s / base.tokens_per_s},
                     {"int8_over_libtorch_dynamic_int8", i8.tokens_per_s / tq.tokens_per_s},
                     {"int8_over_onnxruntime_float",
                      ort.ran ? nlohmann::json(i8.tokens_per_s / ort.tokens_per_s) : nullptr},
                     {"int8_over_onnxruntime_dynamic_int8",
                      ort8.ran ? nlohmann::json(i8.tokens_per_s / ort8.tokens_per_s) : nullptr},
                     {"lstm_chunk_seconds_float", t_lstm_float},
                     {"lstm_chunk_seconds_int8", t_lstm_int8},
                     {"int8_chunk",
                      {{"decoder_seconds", split.decoder},
                       {"decoder_products_seconds", split.decoder_products},
                       {"lstm_seconds", split.lstm},
                       {"lstm_products_seconds", split.lstm_products},
                       {"outside_products_share", split.outside_share()}}},
                     {"int8_perplexity_delta", i8.perplexity / fl.perplexity - 1},
                     {"float_weight_bytes", float_weight_bytes(*model)},
                     {"int8_engine_weight_bytes", int8_bytes},
                     {"libtorch_dynamic_int8_weight_bytes", td.bytes()}};
    char line[512];
    table << "engines, " << cfg.describe() << ", " << i8.tokens << " test tokens, batch 10, "
          << q.bits << "-bit codes per row (the simulated model = those weights in float):\n";
    auto print = [&](const char* name, const EvalResult& r) {
      std::snprintf(line, sizeof line, "  %-34s %9.0f tok/s  %6.3fx lmquant float  ppl %.3f\n",
                    name, r.tokens_per_s, r.tokens_per_s / fl.tokens_per_s, r.perplexity);
      table << line;
    };
    print("LibTorch float loop", base);
    print("lmquant float (simulated)", fl);
    print("lmquant int8 decoder, float LSTM", dec);
    print("lmquant int8 engine", i8);
    print("lmquant int8 engine, rotated", i8r);
    print("LibTorch dynamic int8 (ONEDNN)", tq);
    if (ort.ran && ort8.ran) {
      EvalResult o, o8;
      o.tokens_per_s = ort.tokens_per_s;
      o.perplexity = ort.perplexity;
      o8.tokens_per_s = ort8.tokens_per_s;
      o8.perplexity = ort8.perplexity;
      print(("ONNX Runtime " + ort.version + " float").c_str(), o);
      print(("ONNX Runtime " + ort.version + " dynamic int8").c_str(), o8);
      std::snprintf(line, sizeof line,
                    "  int8 engine: %.2fx ONNX Runtime float, %.2fx its dynamic int8 (the same "
                    "codes; its inference calls only); ONNX Runtime float perplexity %+.1e "
                    "relative to lmquant float's\n",
                    i8.tokens_per_s / ort.tokens_per_s, i8.tokens_per_s / ort8.tokens_per_s,
                    ort.perplexity / fl.perplexity - 1);
      table << line;
    } else if (ort.ran) {
      table << "  ONNX Runtime dynamic int8: failed (" << ort8.why_not << ")\n";
    } else {
      table << "  ONNX Runtime: skipped (" << ort.why_not << ")\n";
    }
    std::snprintf(line, sizeof line,
                  "  int8 engine: %.2fx LibTorch's dynamic int8, perplexity %+.3f%% vs simulated; "
                  "weights held %.1f MiB vs float %.1f MiB\n",
                  i8.tokens_per_s / tq.tokens_per_s, 100 * (i8.perplexity / fl.perplexity - 1),
                  int8_bytes / 1048576.0, float_weight_bytes(*model) / 1048576.0);
    table << line;
    std::snprintf(
        line, sizeof line,
        "  rotated (--rotate, the same %d-bit rows): simulated ppl %.3f, int8 engine %.3f "
        "(%+.3f%%); the online rotations cost %.1f%% of the engine's speed\n",
        q.bits, flr.perplexity, i8r.perplexity, 100 * (i8r.perplexity / flr.perplexity - 1),
        100 * (1 - i8r.tokens_per_s / i8.tokens_per_s));
    table << line;
    std::snprintf(
        line, sizeof line,
        "  the LSTM alone, one 35 x 10 chunk: LibTorch fused op %.2f ms, int8 LSTM %.2f ms "
        "(%.2fx)\n",
        t_lstm_float * 1e3, t_lstm_int8 * 1e3, t_lstm_float / t_lstm_int8);
    table << line;
    std::snprintf(line, sizeof line,
                  "  one 35 x 10 chunk in int8: decoder %.2f ms (integer products %.2f ms), LSTM "
                  "%.2f ms (products %.2f ms); outside the products: %.0f%% of the chunk "
                  "(quantizing activations, dequantizing, gates, log-sum-exp)\n",
                  split.decoder * 1e3, split.decoder_products * 1e3, split.lstm * 1e3,
                  split.lstm_products * 1e3, 100 * split.outside_share());
    table << line;
  }
  if (o.has("train")) {
    auto snapshot = model->clone_model();
    auto run = [&](bool fused) {
      LstmLm m(snapshot->clone_model());
      TrainOptions t;
      t.epochs = 1;
      t.max_batches = o.train_batches;
      t.fused_loss = fused;
      t.log_interval = 1 << 30;
      Corpus small;
      small.vocab = corpus.vocab;
      small.train = corpus.train.narrow(
          0, 0, std::min<int64_t>(corpus.train.numel(), 20 * 35 * (o.train_batches + 1) + 1));
      small.valid = corpus.valid.narrow(0, 0, 10 * 36);
      small.test = small.valid;
      torch::manual_seed(7);
      return train(m, small, t);
    };
    TrainResult base = run(false), ours = run(true);
    out["train"] = {{"model", cfg.describe()},
                    {"batches", o.train_batches},
                    {"baseline_tokens_per_s", base.train_tokens_per_s},
                    {"lmquant_tokens_per_s", ours.train_tokens_per_s},
                    {"ratio", ours.train_tokens_per_s / base.train_tokens_per_s},
                    {"peak_rss_mib", peak_rss_mib()}};
    table << "train " << cfg.describe() << ", " << o.train_batches << " batches of 20x35:\n"
          << "  baseline (torch::cross_entropy) " << base.train_tokens_per_s << " tok/s\n"
          << "  lmquant (fused softmax-CE)      " << ours.train_tokens_per_s << " tok/s\n"
          << "  ratio " << ours.train_tokens_per_s / base.train_tokens_per_s << "x\n";
  }
  if (o.has("quant")) {
    auto stream = corpus.test.narrow(0, 0, std::min<int64_t>(o.eval_tokens, corpus.test.numel()));
    const EvalResult fl = evaluate(model, stream, EvalOptions{});
    nlohmann::json rows = nlohmann::json::array();
    table << "quantize " << cfg.describe() << " (all matrices, 4 bits):\n";
    for (const char* rule : {"max", "mse", "aciq", "kl", "percentile:99.99"})
      for (const char* gran : {"tensor", "row"}) {
        QuantConfig q;
        q.clip = ClipRule::parse(rule);
        q.granularity = parse_granularity(gran);
        const auto t0 = Clock::now();
        auto qm = quantize_model(model, q);
        const double secs = since(t0);
        rows.push_back({{"clip", rule}, {"granularity", gran}, {"seconds", secs}});
        table << "  clip " << rule << " " << gran << ": " << secs << " s\n";
      }
    // The OCS split alone (plan + split of every matrix, as quantize_model does it), then the
    // whole OCS quantization (split, α, rounding, both realisations).
    auto t1 = Clock::now();
    int64_t split_columns = 0;
    for (const auto& m : named_matrices(model->config())) {
      const auto& w = m.weight(*model);
      const OcsPlan plan = plan_ocs(w, 0.05);
      split_columns += apply_ocs(w, plan).size(1) - w.size(1);
    }
    const double split_secs = since(t1);
    QuantConfig o;
    o.method = Method::kOcs;
    o.expand_ratio = 0.05;
    o.build_expanded = true;
    t1 = Clock::now();
    auto qo = quantize_model(model, o);
    const double ocs_secs = since(t1);
    const EvalResult folded = evaluate(qo.folded, stream, EvalOptions{});
    const EvalResult expanded = evaluate(qo.expanded, stream, EvalOptions{});
    const double mac_overhead = static_cast<double>(qo.macs_after) / qo.macs_before;
    out["quant"] = {{"model", cfg.describe()},
                    {"clip_choice", rows},
                    {"ocs_r005_split_seconds", split_secs},
                    {"ocs_r005_seconds", ocs_secs},
                    {"float_eval_seconds", fl.seconds},
                    {"float_tokens_per_s", fl.tokens_per_s},
                    {"folded_tokens_per_s", folded.tokens_per_s},
                    {"expanded_tokens_per_s", expanded.tokens_per_s},
                    {"expanded_slowdown", folded.tokens_per_s / expanded.tokens_per_s},
                    {"expanded_mac_ratio", mac_overhead}};
    table << "  OCS r=0.05 split alone, all matrices (plan + split, " << split_columns
          << " new columns): " << split_secs << " s\n";
    table << "  OCS r=0.05 + max, all matrices (split, quantize, build folded+expanded): "
          << ocs_secs << " s\n  eval " << stream.numel() << " tokens: float " << fl.tokens_per_s
          << " tok/s, folded " << folded.tokens_per_s << " tok/s, expanded "
          << expanded.tokens_per_s << " tok/s\n  expanded slowdown "
          << folded.tokens_per_s / expanded.tokens_per_s << "x vs its MAC ratio " << mac_overhead
          << "x (the expanded LSTM runs step by step, the folded one uses the fused op)\n";
  }
  if (o.has("gptq")) {
    // Error-compensating rounding of every matrix, calibration forward passes included (512
    // train sequences of 35 tokens after a 35-token warm-up), against round-to-nearest with the
    // same clip rule and granularity beside it.
    QuantConfig q;
    q.bits = 3;
    q.clip = ClipRule::parse("mse");
    q.granularity = Granularity::kRow;
    auto t0 = Clock::now();
    auto nearest = quantize_model(model, q);
    const double nearest_secs = since(t0);
    t0 = Clock::now();
    const Calibration cal = make_calibration(corpus.train, {});
    q.rounding = Rounding::kGptq;
    auto g = quantize_model(model, q, &cal);
    const double gptq_secs = since(t0);
    out["gptq"] = {{"model", cfg.describe()},
                   {"config", q.label()},
                   {"calibration_tokens", cal.tokens.numel()},
                   {"gptq_seconds", gptq_secs},
                   {"nearest_seconds", nearest_secs},
                   {"ratio", gptq_secs / nearest_secs},
                   {"peak_rss_mib", peak_rss_mib()}};
    table << "gptq " << cfg.describe() << ", " << q.label() << ", every matrix, calibration "
          << cal.tokens.size(1) << " x " << cal.tokens.size(0)
          << " train tokens included: " << gptq_secs
          << " s (round-to-nearest, same α: " << nearest_secs << " s; " << gptq_secs / nearest_secs
          << "x)\n";
  }
  out["device"] = model->device().str();
  return {out, table.str()};
}

}  // namespace lmquant
