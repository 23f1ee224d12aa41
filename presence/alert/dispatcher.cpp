#include "presence/alert/dispatcher.h"

#include <algorithm>
#include <chrono>
#include <random>
#include <set>

#include "presence/alert/payload.h"

namespace presence::alert {
namespace {

using SteadyClock = std::chrono::steady_clock;

std::int64_t wall_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string describe(const HttpResponse& r) {
  if (r.status == 0) return "no response (" + r.error + ")";
  std::string s = "HTTP " + std::to_string(r.status);
  if (!r.body.empty()) s += " body: " + r.body.substr(0, 512);
  return s;
}

}  // namespace

struct Dispatcher::SinkState {
  std::unique_ptr<Sink> sink;
  std::thread thread;
  std::atomic<std::uint64_t> sent{0}, requests{0}, failed{0}, retried{0}, dead_lettered{0},
      summaries{0}, skipped{0};
  std::atomic<bool> failing{false};
  common::LogLimiter failure_log;
  common::LogLimiter dead_letter_log;
  std::uint64_t failure_streak = 0;
};

Dispatcher::Dispatcher(DispatcherConfig config, std::vector<std::unique_ptr<Sink>> sinks)
    : config_(std::move(config)), log_(common::or_stderr(config_.log)), outbox_([&] {
        OutboxConfig c = config_.outbox;
        if (!c.log) c.log = log_;
        return c;
      }()) {
  for (auto& s : sinks) {
    auto state = std::make_unique<SinkState>();
    state->sink = std::move(s);
    sinks_.push_back(std::move(state));
  }
}

Dispatcher::~Dispatcher() { stop(); }

common::Result<void> Dispatcher::start() {
  using Started = common::Result<void>;
  if (started_) return {};
  std::vector<std::string> names;
  std::set<std::string> seen;
  for (const auto& s : sinks_) {
    const auto& c = s->sink->config();
    if (c.name.empty() || !seen.insert(c.name).second) {
      return Started::fail("alert sinks: empty or duplicate sink name '" + c.name + "'");
    }
    if (c.url.rfind("http://", 0) != 0 && c.url.rfind("https://", 0) != 0) {
      // Caught here, at start, rather than as a retry loop that can never succeed.
      return Started::fail("alert sink '" + c.name + "': url '" + c.url +
                           "' is not an http(s) URL");
    }
    names.push_back(c.name);
  }
  if (config_.anchor.wall == std::chrono::system_clock::time_point{}) {
    // No anchor given: assume MonoTime counts steady_clock milliseconds (see DispatcherConfig).
    config_.anchor.wall = std::chrono::system_clock::now();
    config_.anchor.mono = core::mono_ms(
        std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now().time_since_epoch())
            .count());
  }
  if (std::string error; !outbox_.open(names, &error)) return Started::fail(std::move(error));
  {
    std::lock_guard lock(written_mu_);
    written_.clear();
    written_.emplace_back(submitted_.load(), outbox_.next_seq());
    written_intents_ = submitted_.load();
  }
  const auto st = outbox_.stats();
  if (st.loaded > 0) {
    log_("alerts: resuming " + std::to_string(st.loaded) + " undelivered alert(s) from the outbox");
  }
  stopping_ = false;
  stop_writer_ = false;
  started_ = true;
  writer_ = std::thread([this] { run_writer(); });
  for (auto& s : sinks_) {
    SinkState* raw = s.get();
    s->thread = std::thread([this, raw] { run_sink(*raw); });
  }
  return {};
}

void Dispatcher::submit(std::vector<core::AlertIntent> intents) {
  if (intents.empty()) return;
  submitted_ += intents.size();
  {
    std::lock_guard lock(inbox_mu_);
    if (inbox_.empty()) {
      inbox_ = std::move(intents);
    } else {
      for (auto& i : intents) inbox_.push_back(std::move(i));
    }
  }
  inbox_cv_.notify_all();
}

void Dispatcher::submit_decided(core::AlertIntent intent, std::int64_t wall_ms) {
  // The writer turns `at` back into wall time with the same anchor: exact to the millisecond.
  intent.at = config_.anchor.to_mono(wall_ms);
  if (intent.at == core::MonoTime{}) intent.at = core::mono_ms(1);  // 0 means "stamp it now"
  std::vector<core::AlertIntent> one;
  one.push_back(std::move(intent));
  submit(std::move(one));
}

void Dispatcher::run_writer() {
  for (;;) {
    std::vector<core::AlertIntent> batch;
    {
      std::unique_lock lock(inbox_mu_);
      inbox_cv_.wait(lock, [&] { return stop_writer_ || !inbox_.empty(); });
      if (inbox_.empty()) return;  // stopping, and everything submitted is written
      batch.swap(inbox_);
      writing_ = true;
    }
    // Group commit: everything that arrived while the last fsync ran goes in one write + fsync.
    std::vector<OutboxEntry> entries;
    entries.reserve(batch.size() * sinks_.size());
    std::vector<std::size_t> ends;  // per intent: entries before the next intent's
    ends.reserve(batch.size());
    for (auto& intent : batch) {
      if (clamp_intent(intent)) {
        ++clamped_;
        if (clamp_log_.allow()) {
          log_("alerts: intent '" + intent.dedup_key.substr(0, 200) +
               "' was larger than the sinks accept; cut to fit (" +
               std::to_string(clamped_.load()) + " so far)");
        }
      }
      // An intent without a time (at == 0) is stamped with the time it is written.
      const std::int64_t wall =
          intent.at == core::MonoTime{} ? wall_now_ms() : config_.anchor.to_wall_ms(intent.at);
      for (const auto& s : sinks_) {
        const auto& accepts = s->sink->config().accepts;
        if (accepts && !accepts(intent)) continue;
        if (!s->sink->wants(intent)) {
          ++s->skipped;
          continue;
        }
        entries.push_back({0, s->sink->config().name, intent, wall});
      }
      ends.push_back(entries.size());
    }
    const std::uint64_t first_seq = outbox_.next_seq();  // this thread is the only appender
    outbox_.append(entries);
    {
      std::lock_guard lock(written_mu_);
      for (std::size_t k = 0; k < ends.size(); ++k)
        written_.emplace_back(++written_intents_, first_seq + ends[k]);
      // Bounded when no saver asks (alerts without a snapshot): keep the newest.
      while (written_.size() > 100000) written_.pop_front();
    }
    {
      std::lock_guard lock(inbox_mu_);
      writing_ = false;
    }
    inbox_cv_.notify_all();
    // HA: the leader records each page in etcd before the sink threads are woken for it (after
    // wait_durable's signal: a snapshot does not wait for etcd). A sink thread already awake may
    // take it sooner: its gate writes the same record before the request, and a record written
    // after the page was delivered is one the log covers (the next takeover deletes it).
    if (config_.queued && !entries.empty()) config_.queued(entries);
    // Wake the sink threads. Taking work_mu_ orders this after any predicate check in progress.
    { std::lock_guard lock(work_mu_); }
    work_cv_.notify_all();
  }
}

void Dispatcher::run_sink(SinkState& s) {
  const Sink& sink = *s.sink;
  const SinkConfig& cfg = sink.config();
  const HttpTimeouts timeouts{cfg.connect_timeout, cfg.timeout};
  HttpClient http;
  std::mt19937_64 rng(std::random_device{}());
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  auto next_send = SteadyClock::now();  // min_interval and retry delays move this forward
  RateWindow rate(cfg.rate_limit);      // issue 18: never over the endpoint's rate limit

  // Waits until `until` or stop; true if stopping.
  auto sleep_until = [&](SteadyClock::time_point until) {
    std::unique_lock lock(work_mu_);
    work_cv_.wait_until(lock, until, [&] { return stopping_.load(); });
    return stopping_.load();
  };

  for (;;) {
    {
      std::unique_lock lock(work_mu_);
      work_cv_.wait(lock, [&] { return stopping_.load() || outbox_.depth(cfg.name) > 0; });
      if (stopping_) return;
    }
    std::vector<OutboxEntry> batch =
        outbox_.take(cfg.name, sink.batch_size(outbox_.depth(cfg.name)));
    if (batch.empty()) continue;
    std::vector<std::uint64_t> seqs;
    for (const auto& e : batch) seqs.push_back(e.seq);
    const HttpRequest request = sink.build(batch);

    unsigned attempt = 0;
    for (;;) {
      if (sleep_until(next_send) || sleep_until(rate.earliest(SteadyClock::now()))) {
        outbox_.release(seqs);
        return;
      }
      if (config_.gate) {
        // HA: asked before every attempt, so a leader deposed during retries stops sending.
        const auto gate = config_.gate(batch);
        if (gate == DispatcherConfig::Gate::Hold) {
          next_send = std::max(next_send, SteadyClock::now() + std::chrono::milliseconds(200));
          continue;
        }
        if (gate == DispatcherConfig::Gate::Skip) {
          outbox_.settle(seqs, Disposition::Delivered);
          break;
        }
      }
      ++s.requests;
      rate.record(SteadyClock::now());
      const HttpResponse response = http.post(request, timeouts, &stopping_);
      const auto now = SteadyClock::now();
      next_send = now + sink.min_interval();
      if (response.aborted) {
        outbox_.release(seqs);  // shutdown: stays queued, sent after the next start
        return;
      }
      const DeliveryOutcome outcome = sink.classify(response);
      if (outcome == DeliveryOutcome::Delivered) {
        // Counters first: once the queue reads empty (wait_idle), the counters are final.
        s.sent += batch.size();
        if (batch.size() > 1) ++s.summaries;
        outbox_.settle(seqs, Disposition::Delivered);
        if (config_.after_send) config_.after_send(batch);
        if (s.failing) {
          log_("alerts: sink '" + cfg.name + "' delivering again after " +
               std::to_string(s.failure_streak) + " failed request(s)");
        }
        s.failing = false;
        s.failure_streak = 0;
        break;
      }
      ++s.failed;
      if (outcome == DeliveryOutcome::DeadLetter) {
        // PagerDuty 400 / Slack invalid_payload: retrying cannot help. Logged with the body so
        // the operator can see what the endpoint objected to.
        s.dead_lettered += batch.size();
        outbox_.settle(seqs, Disposition::DeadLettered);
        if (config_.dropped) config_.dropped(batch);
        if (s.dead_letter_log.allow()) {
          const auto held = s.dead_letter_log.take_suppressed();
          log_("alerts: sink '" + cfg.name + "' rejected " + std::to_string(batch.size()) +
               " alert(s) (dedup_key '" + batch.front().intent.dedup_key +
               "'), dead-lettered, not retried: " + describe(response) +
               (held > 0 ? " (" + std::to_string(held) + " more dead letters since last line)"
                         : ""));
        }
        break;
      }
      ++s.retried;
      ++attempt;
      ++s.failure_streak;
      s.failing = true;
      Duration delay = backoff_delay(cfg.backoff, attempt, unit(rng));
      if (response.retry_after) {
        // Slack/PagerDuty 429: the server says when; never sooner than our own first step.
        delay = std::max(std::min(*response.retry_after, cfg.retry_after_max), cfg.backoff.initial);
      }
      next_send = std::max(next_send, now + delay);
      if (s.failure_log.allow()) {
        log_("alerts: sink '" + cfg.name + "' delivery failed: " + describe(response) + "; retry " +
             std::to_string(attempt) + " in " + std::to_string(delay.count()) + " ms (" +
             std::to_string(outbox_.depth(cfg.name)) + " queued)");
      }
    }
  }
}

void Dispatcher::stop() {
  if (!started_) return;
  {
    std::lock_guard lock(inbox_mu_);
    stop_writer_ = true;
  }
  inbox_cv_.notify_all();
  if (writer_.joinable()) writer_.join();  // everything submitted is now on disk
  {
    std::lock_guard lock(work_mu_);
    stopping_ = true;
  }
  work_cv_.notify_all();
  for (auto& s : sinks_) {
    if (s->thread.joinable()) s->thread.join();
  }
  started_ = false;
}

std::uint64_t Dispatcher::outbox_seq_after(std::uint64_t submitted) {
  std::lock_guard lock(written_mu_);
  // The last record at or below `submitted`: exact when the writer got there, else a lower bound.
  std::uint64_t seq = 0;
  while (!written_.empty() && written_.front().first <= submitted) {
    seq = written_.front().second;
    if (written_.size() == 1 || written_[1].first > submitted) break;
    written_.pop_front();
  }
  return seq;
}

bool Dispatcher::wait_durable(Duration timeout) {
  std::unique_lock lock(inbox_mu_);
  return inbox_cv_.wait_for(lock, timeout, [&] { return inbox_.empty() && !writing_; });
}

bool Dispatcher::wait_idle(Duration timeout) {
  const auto deadline = SteadyClock::now() + timeout;
  for (;;) {
    bool inbox_idle = false;
    {
      std::lock_guard lock(inbox_mu_);
      inbox_idle = inbox_.empty() && !writing_;
    }
    if (inbox_idle && outbox_.stats().depth == 0) return true;
    if (SteadyClock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

DispatcherStats Dispatcher::stats() const {
  DispatcherStats out;
  const std::int64_t now = wall_now_ms();
  for (const auto& s : sinks_) {
    SinkStats st;
    st.name = s->sink->config().name;
    st.sent = s->sent;
    st.requests = s->requests;
    st.failed = s->failed;
    st.retried = s->retried;
    st.dead_lettered = s->dead_lettered;
    st.skipped = s->skipped;
    st.summaries = s->summaries;
    st.failing = s->failing;
    const SinkQueueStats q = outbox_.queue_stats(st.name);
    st.depth = q.depth;
    st.coalesced = q.coalesced;
    st.dropped = q.dropped;
    st.oldest_age_ms =
        q.oldest_wall_ms == 0 ? 0 : std::max<std::int64_t>(now - q.oldest_wall_ms, 0);
    out.sinks.push_back(std::move(st));
  }
  out.outbox = outbox_.stats();
  out.outbox_oldest_age_ms = out.outbox.oldest_wall_ms == 0
                                 ? 0
                                 : std::max<std::int64_t>(now - out.outbox.oldest_wall_ms, 0);
  out.submitted = submitted_;
  out.clamped = clamped_;
  {
    std::lock_guard lock(inbox_mu_);
    out.inbox = inbox_.size();
  }
  return out;
}

}  // namespace presence::alert
