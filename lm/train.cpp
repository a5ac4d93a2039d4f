#include "lm/train.h"

#include <ATen/CPUGeneratorImpl.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <sstream>

#include "corpus/batching.h"
#include "lm/evaluate.h"
#include "lm/matrices.h"
#include "lm/model_io.h"
#include "lm/nll.h"
#include "util/runtime.h"

namespace lmquant {
namespace {

struct ResumeState {
  int64_t epoch = 1;
  std::vector<double> lr_schedule;  // the run's schedule (empty: the plateau rule)
  double initial_valid_ppl = 0;     // from_trained runs
  int64_t batch = 0;                // batches done in `epoch`
  double lr = 20;
  double best_loss = INFINITY;
  std::vector<double> valid_ppl;
};

// What every checkpoint of a run records besides the weights: corpus and tokenizer.
nlohmann::json corpus_meta(const Corpus& corpus) {
  nlohmann::json m = {{"corpus", corpus.location.name}};
  if (!corpus.tokenizer_path.empty()) m["tokenizer_path"] = corpus.tokenizer_path;
  return m;
}

void save_state(const std::string& path, const LstmLm& model, const Corpus& corpus,
                const ResumeState& s, const LstmState& hidden) {
  nlohmann::json meta = {{"train_state",
                          {{"epoch", s.epoch},
                           {"batch", s.batch},
                           {"lr", s.lr},
                           {"lr_schedule", s.lr_schedule},
                           {"initial_valid_ppl", s.initial_valid_ppl},
                           {"best_loss", std::isfinite(s.best_loss) ? s.best_loss : -1.0},
                           {"valid_ppl", s.valid_ppl}}}};
  meta.update(corpus_meta(corpus));
  Checkpoint ck = model_checkpoint(model, &corpus.vocab, meta, corpus.tokenizer);
  ck.tensors.emplace_back("train.hidden_h", hidden.h);
  ck.tensors.emplace_back("train.hidden_c", hidden.c);
  ck.tensors.emplace_back("train.rng_state", at::detail::getDefaultCPUGenerator().get_state());
  save_checkpoint(path, ck);
}

ResumeState load_state(const std::string& path, LstmLm& model, const Corpus& corpus,
                       LstmState& hidden) {
  const Vocab& vocab = corpus.vocab;
  Checkpoint ck = read_checkpoint(path);
  if (!ck.meta.contains("train_state"))
    throw std::runtime_error(path + " holds no training state; cannot resume from it");
  if (ck.tokenizer != corpus.tokenizer)
    throw std::runtime_error(path + " was trained with tokenizer " + ck.tokenizer + ", not " +
                             corpus.tokenizer + "; cannot resume");
  if (ck.vocab_hash != vocab.hash())
    throw std::runtime_error(path + " was trained on a different vocabulary; cannot resume");
  if (ck.config.to_json() != model->config().to_json())
    throw std::runtime_error(path + " holds a " + ck.config.describe() + " model, not the " +
                             model->config().describe() + " asked for; cannot resume");
  torch::NoGradGuard guard;
  for (auto& [name, p] : stored_weights(*model)) {
    const auto* t = ck.find(name);
    if (!t || !t->sizes().equals(p.sizes()))
      throw std::runtime_error(path + ": tensor " + name +
                               " is missing or misshapen; cannot resume");
    p.copy_(*t);
  }
  const auto& st = ck.meta["train_state"];
  ResumeState s;
  s.epoch = st.at("epoch");
  s.batch = st.at("batch");
  s.lr = st.at("lr");
  s.best_loss = st.at("best_loss").get<double>() < 0 ? INFINITY : st.at("best_loss").get<double>();
  s.valid_ppl = st.at("valid_ppl").get<std::vector<double>>();
  s.lr_schedule = st.value("lr_schedule", std::vector<double>{});
  s.initial_valid_ppl = st.value("initial_valid_ppl", 0.0);
  auto need = [&](const std::string& name, const torch::Tensor& like) {
    const auto* t = ck.find(name);
    if (!t || !t->sizes().equals(like.sizes()))
      throw std::runtime_error(path + ": the training state lacks " + name +
                               " (or it has the wrong shape); cannot resume");
    return *t;
  };
  hidden.h.copy_(need("train.hidden_h", hidden.h));
  hidden.c.copy_(need("train.hidden_c", hidden.c));
  auto gen = at::detail::getDefaultCPUGenerator();
  gen.set_state(need("train.rng_state", gen.get_state()));
  return s;
}

std::string schedule_text(const std::vector<double>& lrs) {
  if (lrs.empty()) return "the plateau rule";
  std::ostringstream s;
  for (size_t i = 0; i < lrs.size(); ++i) s << (i ? "," : "") << lrs[i];
  return s.str();
}

}  // namespace

std::vector<double> parse_lr_schedule(const std::string& text) {
  std::vector<double> out;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    size_t used = 0;
    double v = 0;
    try {
      v = std::stod(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != item.size() || !(v > 0) || !std::isfinite(v))
      throw std::invalid_argument("learning-rate schedule '" + text + "': '" + item +
                                  "' is not a positive number (expected e.g. 5,1.25)");
    out.push_back(v);
  }
  if (out.empty())
    throw std::invalid_argument("learning-rate schedule is empty (expected e.g. 5,1.25)");
  return out;
}

void validate(const TrainOptions& o) {
  if (o.epochs <= 0 || o.batch <= 0 || o.bptt <= 0 || o.log_interval <= 0 || !(o.lr > 0) ||
      !std::isfinite(o.lr))
    throw std::invalid_argument("epochs, batch, bptt, log interval and lr must be positive");
  for (double lr : o.lr_schedule)
    if (!(lr > 0) || !std::isfinite(lr))
      throw std::invalid_argument("every learning rate of the schedule must be positive, got " +
                                  schedule_text(o.lr_schedule));
  if (!o.lr_schedule.empty() && static_cast<int64_t>(o.lr_schedule.size()) != o.epochs)
    throw std::invalid_argument("the learning-rate schedule " + schedule_text(o.lr_schedule) +
                                " has " + std::to_string(o.lr_schedule.size()) +
                                " epochs, not the " + std::to_string(o.epochs) + " asked for");
}

TrainResult train(LstmLm& model, const Corpus& corpus, const TrainOptions& o) {
  validate(o);
  // The batches' large temporaries stay in the heap while training (util/runtime.h).
  keep_large_blocks(true);
  struct Restore {
    ~Restore() { keep_large_blocks(false); }
  } restore;
  auto data = batchify(corpus.train, o.batch).to(model->device());
  const int64_t rows = data.size(0);
  const int64_t batches = (rows - 1 + o.bptt - 1) / o.bptt;
  const std::string last = o.out.empty() ? "" : o.out + ".last";
  ResumeState s;
  s.lr = o.lr_schedule.empty() ? o.lr : o.lr_schedule.front();
  s.lr_schedule = o.lr_schedule;
  LstmState hidden = model->init_state(o.batch);
  TrainResult result;
  if (o.resume) {
    if (last.empty() || !std::filesystem::exists(last))
      throw std::runtime_error(
          "cannot resume: no resumable state " +
          (last.empty() ? std::string("(resuming needs an output path)") : last));
    s = load_state(last, model, corpus, hidden);
    if (s.lr_schedule != o.lr_schedule)
      throw std::runtime_error(last + " was trained with the learning-rate schedule " +
                               schedule_text(s.lr_schedule) + ", not " +
                               schedule_text(o.lr_schedule) + "; resume with the same one");
    result.start_epoch = s.epoch;
    result.initial_valid_ppl = s.initial_valid_ppl;
    if (o.log)
      o.log("resuming " + last + " at epoch " + std::to_string(s.epoch) + ", batch " +
            std::to_string(s.batch) + ", lr " + std::to_string(s.lr));
  } else if (o.from_trained) {
    // The model given is the best so far until an epoch beats it.
    const EvalResult v = evaluate(model, corpus.valid, {10, o.bptt, {}, {}});
    s.best_loss = v.loss;
    s.initial_valid_ppl = result.initial_valid_ppl = v.perplexity;
    if (o.log) {
      std::ostringstream l;
      l.precision(2);
      l << std::fixed << "| start | valid loss " << v.loss << " | valid ppl " << v.perplexity
        << " | schedule " << schedule_text(o.lr_schedule);
      o.log(l.str());
    }
    if (!o.out.empty()) {
      nlohmann::json meta = corpus_meta(corpus);
      meta["valid_ppl"] = v.perplexity;
      meta["epoch"] = 0;
      save_model(o.out, model, &corpus.vocab, meta, corpus.tokenizer);
    }
  }
  auto params = model->parameters();
  double train_seconds = 0;
  int64_t run_batches = 0;  // batches this run has done (a resumed run counts from 0)
  double eta_seconds = 0;   // time of the timed batches (the run's first is a warm-up)
  int64_t eta_tokens = 0;
  for (; s.epoch <= o.epochs; ++s.epoch) {
    if (!o.lr_schedule.empty()) s.lr = o.lr_schedule[static_cast<size_t>(s.epoch - 1)];
    model->train();
    if (s.batch == 0) hidden = model->init_state(o.batch);
    double interval_loss = 0;
    int64_t interval_batches = 0;
    const int64_t limit = o.max_batches > 0 ? std::min(batches, o.max_batches) : batches;
    for (; s.batch < limit; ++s.batch) {
      const auto t0 = std::chrono::steady_clock::now();
      auto chunk = get_batch(data, s.batch * o.bptt, o.bptt);
      hidden.detach_();
      model->zero_grad();
      auto logits = model->forward(chunk.data, hidden);
      auto loss = o.fused_loss ? fused_cross_entropy(logits, chunk.targets)
                               : torch::cross_entropy_loss(logits, chunk.targets);
      loss.backward();
      torch::nn::utils::clip_grad_norm_(params, o.clip);
      {
        torch::NoGradGuard guard;
        for (auto& p : params)
          if (p.grad().defined()) p.add_(p.grad(), -s.lr);
      }
      interval_loss += loss.item<double>();
      ++interval_batches;
      const double batch_seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      train_seconds += batch_seconds;
      result.train_tokens += chunk.targets.numel();
      if (++run_batches > 1 && run_batches <= o.eta_batches + 1) {
        eta_seconds += batch_seconds;
        eta_tokens += chunk.targets.numel();
        if (run_batches == o.eta_batches + 1 && o.log) {
          const int64_t left = (limit - s.batch - 1) + (o.epochs - s.epoch) * limit;
          const double per_batch = eta_seconds / static_cast<double>(o.eta_batches);
          const double epoch_min = per_batch * static_cast<double>(limit) / 60;
          std::ostringstream l;
          l.precision(1);
          l << std::fixed << "measured " << static_cast<int64_t>(eta_tokens / eta_seconds)
            << " tok/s on " << o.eta_batches << " batches: about " << epoch_min
            << " min per epoch of " << limit << " batches, " << per_batch * left / 60
            << " min for the " << left << " batches left (plus a validation pass per epoch)";
          o.log(l.str());
        }
      }
      if (o.progress) {
        std::ostringstream d;
        d.precision(3);
        d << std::fixed << "loss " << interval_loss / interval_batches << " lr " << s.lr;
        o.progress({"epoch " + std::to_string(s.epoch), (s.batch + 1) * o.bptt * o.batch,
                    limit * o.bptt * o.batch, "tok", d.str(), false});
      }
      if ((s.batch + 1) % o.log_interval == 0) {
        if (o.log) {
          std::ostringstream l;
          l.precision(2);
          l << std::fixed << "| epoch " << s.epoch << " | " << s.batch + 1 << "/" << limit
            << " batches | lr " << s.lr << " | loss " << interval_loss / interval_batches
            << " | ppl " << perplexity_of_loss(interval_loss / interval_batches);
          o.log(l.str());
        }
        interval_loss = 0;
        interval_batches = 0;
        if (!last.empty()) {
          ResumeState at = s;  // resumes at the next batch
          at.batch = s.batch + 1;
          save_state(last, model, corpus, at, hidden);
        }
      }
      if (o.should_stop && o.should_stop()) {
        result.stopped = true;
        result.valid_ppl = s.valid_ppl;
        result.train_tokens_per_s = train_seconds > 0 ? result.train_tokens / train_seconds : 0;
        return result;
      }
    }
    if (o.progress) o.progress({"epoch " + std::to_string(s.epoch), 0, 0, "tok", "", true});
    const EvalResult v = evaluate(model, corpus.valid, {10, o.bptt, {}, {}});
    s.valid_ppl.push_back(v.perplexity);
    if (o.log) {
      std::ostringstream l;
      l.precision(2);
      l << std::fixed << "| end of epoch " << s.epoch << " | valid loss " << v.loss
        << " | valid ppl " << v.perplexity;
      o.log(l.str());
    }
    if (v.loss < s.best_loss) {
      s.best_loss = v.loss;
      if (!o.out.empty()) {
        nlohmann::json meta = corpus_meta(corpus);
        meta["valid_ppl"] = v.perplexity;
        meta["epoch"] = s.epoch;
        save_model(o.out, model, &corpus.vocab, meta, corpus.tokenizer);
      }
    } else if (o.lr_schedule.empty()) {
      s.lr /= 4;
    }
    s.batch = 0;
    if (!last.empty()) {
      ResumeState next = s;
      next.epoch = s.epoch + 1;
      save_state(last, model, corpus, next, hidden);
    }
  }
  result.valid_ppl = s.valid_ppl;
  result.best_valid_ppl = perplexity_of_loss(s.best_loss);
  result.train_tokens_per_s = train_seconds > 0 ? result.train_tokens / train_seconds : 0;
  return result;
}

}  // namespace lmquant
