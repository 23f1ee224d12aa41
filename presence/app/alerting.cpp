#include "presence/app/alerting.h"

#include "presence/alert/alertmanager.h"
#include "presence/alert/pagerduty_change.h"
#include "presence/alert/payload.h"
#include "presence/alert/teams.h"
#include "presence/core/words.h"
#include "presence/ingest/payload.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <set>
#include <sstream>
#include <utility>

namespace presence::app {

namespace {

// Config silences are re-created from the file at every start; the restored copies (from the
// snapshot) are recognised by this comment prefix and dropped first, so they do not pile up.
constexpr std::string_view kConfigSilence = "config: ";

core::MonoTime to_mono(WallTime t, const store::WallAnchor& anchor) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch());
  return anchor.to_mono(ms.count());
}

}  // namespace

// PagerDuty payload.source: where presenced runs (the host name), so an on-call can tell which
// presenced paged when several watch different brokers.
static std::string host_source() {
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) != 0 || name[0] == '\0') return "presenced";
  return std::string("presenced@") + name;
}

std::string outbox_path(const Config& c) { return c.store.dir + "/outbox.log"; }
std::string snapshot_path(const Config& c) { return c.store.dir + "/snapshot.bin"; }

// The Events API's limit is per routing key (issue 18).
static alert::RateLimit pagerduty_limit(const PagerDutyConfig& pd) {
  return {pd.rate_limit_events,
          std::chrono::duration_cast<std::chrono::milliseconds>(pd.rate_limit_window)};
}

// Notify is context, never a page (issue 11). The PagerDuty Events sink refuses it itself
// (Sink::wants, counted as skipped); only the change-events sink takes it.
static bool is_notice(const core::AlertIntent& in) {
  return in.action == core::AlertIntent::Action::Notify;
}

std::vector<std::unique_ptr<alert::Sink>> make_sinks(const Config& c, common::LogFn log) {
  std::vector<std::unique_ptr<alert::Sink>> sinks;
  const auto& a = c.alerts;
  if (!a.enabled) return sinks;
  // Routes with their own destination get their own sink; the default sink takes the rest.
  std::set<std::string> own_pd, own_slack;
  for (std::size_t i = 0; i < a.routes.size(); ++i) {
    const auto& r = a.routes[i];
    if (a.pagerduty.enabled && !r.pagerduty_routing_key.empty()) {
      alert::PagerDutyConfig pd;
      pd.sink = alert::sink_config("pagerduty-" + route_name(i), a.pagerduty.url);
      const std::string route = route_name(i);
      pd.sink.accepts = [route](const core::AlertIntent& in) {
        return in.group == route;
      };
      pd.sink.rate_limit = pagerduty_limit(a.pagerduty);
      pd.routing_key = r.pagerduty_routing_key;
      pd.source = host_source();
      sinks.push_back(alert::make_pagerduty_sink(std::move(pd)));
      own_pd.insert(route);
    }
    if (a.slack.enabled && !r.slack_webhook_url.empty()) {
      alert::SlackConfig s;
      s.sink = alert::sink_config("slack-" + route_name(i), r.slack_webhook_url);
      const std::string route = route_name(i);
      s.sink.accepts = [route](const core::AlertIntent& in) { return in.group == route; };
      s.min_interval = std::chrono::milliseconds(
          static_cast<std::int64_t>(1000.0 / a.slack.max_per_second));
      sinks.push_back(alert::make_slack_sink(std::move(s)));
      own_slack.insert(route);
    }
  }
  if (a.pagerduty.enabled) {
    alert::PagerDutyConfig pd;
    pd.sink = alert::sink_config("pagerduty", a.pagerduty.url);
    pd.sink.accepts = [own_pd](const core::AlertIntent& in) {
      return own_pd.count(in.group) == 0;
    };
    pd.sink.rate_limit = pagerduty_limit(a.pagerduty);
    pd.routing_key = a.pagerduty.routing_key;
    pd.source = host_source();
    sinks.push_back(alert::make_pagerduty_sink(std::move(pd)));
    if (a.pagerduty.change_events) {
      alert::PagerDutyChangeConfig ch;
      ch.sink = alert::sink_config("pagerduty-change", a.pagerduty.change_url);
      ch.sink.accepts = [](const core::AlertIntent& in) { return is_notice(in); };
      ch.sink.rate_limit = pagerduty_limit(a.pagerduty);
      ch.routing_key = a.pagerduty.routing_key;
      ch.source = host_source();
      ch.dashboard_url = a.dashboard_url;
      sinks.push_back(alert::make_pagerduty_change_sink(std::move(ch)));
    }
  }
  if (a.slack.enabled) {
    alert::SlackConfig s;
    s.sink = alert::sink_config("slack", a.slack.webhook_url);
    s.sink.accepts = [own_slack](const core::AlertIntent& in) {
      return own_slack.count(in.group) == 0;
    };
    // alerts.slack.max_per_second: Slack answers more than ~1 message/s per webhook with 429.
    s.min_interval =
        std::chrono::milliseconds(static_cast<std::int64_t>(1000.0 / a.slack.max_per_second));
    sinks.push_back(alert::make_slack_sink(std::move(s)));
  }
  if (a.webhook.enabled) {
    alert::WebhookConfig w;
    w.sink = alert::sink_config("webhook", a.webhook.url);
    w.secret = a.webhook.secret;
    sinks.push_back(alert::make_webhook_sink(std::move(w)));
  }
  if (a.alertmanager.enabled) {
    // An HA cluster: every member gets every alert, each through its own queue, so one member
    // down delays nothing for the others (Prometheus sends to all of them too).
    for (std::size_t i = 0; i < a.alertmanager.urls.size(); ++i) {
      alert::AlertmanagerConfig am;
      const std::string name = i == 0 ? "alertmanager" : "alertmanager-" + std::to_string(i + 1);
      am.sink = alert::sink_config(name, alert::alertmanager_endpoint(a.alertmanager.urls[i]));
      am.dashboard_url = a.dashboard_url;
      am.resend_interval = a.alertmanager.resend_interval;
      am.notify_for = a.alertmanager.notify_for;
      am.state_path = c.store.dir + "/" + name + ".json";
      am.log = log;
      sinks.push_back(alert::make_alertmanager_sink(std::move(am)));
    }
  }
  if (a.teams.enabled) {
    alert::TeamsConfig t;
    t.sink = alert::sink_config("teams", a.teams.webhook_url);
    t.dashboard_url = a.dashboard_url;
    t.min_interval =
        std::chrono::milliseconds(static_cast<std::int64_t>(1000.0 / a.teams.max_per_second));
    sinks.push_back(alert::make_teams_sink(std::move(t)));
  }
  return sinks;
}

// ---- Alerting ---------------------------------------------------------------------------------

Alerting::Alerting(Config config, common::LogFn log)
    : config_(std::move(config)),
      log_(common::or_stderr(std::move(log))),
      snapshots_(snapshot_path(config_), log_),
      saver_(snapshots_, store::SnapshotSaver::Hooks{
                             [this](std::uint64_t submitted) -> std::uint64_t {
                               // A failing outbox (full disk) is retried here, off the engine
                               // thread, once per snapshot.
                               if (!dispatcher_) return 0;
                               if (dispatcher_->outbox_failing()) dispatcher_->outbox_recover();
                               dispatcher_->wait_durable(std::chrono::seconds(5));
                               return dispatcher_->outbox_seq_after(submitted);
                             },
                             [this](std::uint64_t outbox_seq) {
                               if (dispatcher_) dispatcher_->snapshot_saved(outbox_seq);
                             }}) {}

Alerting::~Alerting() { stop(); }

common::Result<void> Alerting::start() {
  using Started = common::Result<void>;
  auto sinks = make_sinks(config_, log_);
  std::error_code ec;
  std::filesystem::create_directories(config_.store.dir, ec);
  if (ec) {
    // Without a durable outbox nothing may be sent (a crash would forget it); without sinks the
    // store only holds snapshots, and running without them is better than not running.
    if (!sinks.empty()) {
      return Started::fail("store.dir: cannot create " + config_.store.dir + ": " + ec.message());
    }
    log_("store.dir: cannot create " + config_.store.dir + " (" + ec.message() +
         "): snapshots will fail");
  }
  if (sinks.empty()) {
    log_(config_.alerts.enabled ? "alerts: no sink enabled: alerts are decided, not sent"
                                : "alerts: alerts.enabled is false: alerts are decided, not sent");
  } else {
    alert::DispatcherConfig dc;
    dc.outbox.path = outbox_path(config_);
    dc.outbox.keep_settled_for_snapshot = true;  // replayed over a stale snapshot (issue 19/7)
    dc.outbox.log = log_;
    dc.log = log_;
    dc.gate = gate_;
    dc.after_send = after_send_;
    dc.queued = queued_;
    dc.dropped = dropped_;
    dispatcher_ = std::make_unique<alert::Dispatcher>(std::move(dc), std::move(sinks));
    if (auto started = dispatcher_->start(); !started.ok()) {
      dispatcher_.reset();
      return started;
    }
  }
  alert::WatchdogConfig wc;
  wc.url = config_.alerts.watchdog.url;
  wc.interval = config_.alerts.watchdog.interval;
  // Ping only while the engine thread runs batches and sees the broker: a wedged or blind
  // presenced stops pinging and the outside monitor pages.
  watchdog_ = std::make_unique<alert::Watchdog>(
      wc, [this] { return healthy_.load(); }, log_);
  if (auto started = watchdog_->start(); !started.ok()) return started;
  saver_.start();
  return {};
}

void Alerting::stop() {
  // Bounded: a final snapshot handed over at SIGTERM is written before we go.
  saver_.stop(std::chrono::seconds(10));
  if (watchdog_) watchdog_->stop();
  if (dispatcher_) {
    dispatcher_->wait_durable(std::chrono::seconds(5));
    dispatcher_->stop();
  }
}

server::Step Alerting::restore_step() {
  server::Step s;
  s.name = "alerts.restore";
  s.start = [this](core::Engine& engine, core::MonoTime now) { on_start(engine, now); };
  return s;
}

server::Step Alerting::step() {
  server::Step s;
  s.name = "alerts";
  s.run = [this](server::Batch& b) {
    for (const auto& e : b.events) on_event(b.engine, e);
    after_batch(b.engine, b.now);
  };
  s.stop = [this](core::Engine& engine, core::MonoTime now) { on_stop(engine, now); };
  return s;
}

void Alerting::on_start(core::Engine& engine, core::MonoTime now) {
  anchor_.wall = std::chrono::system_clock::now();
  anchor_.mono = now;
  const bool naive = config_.mode == Mode::naive;
  if (!naive) {
    policy_ = std::make_unique<core::AlertPolicy>(
        policy_config(config_), fleet_config(config_),
        [&engine](core::DeviceIndex d) { return std::string(engine.id_of(d)); });
  }
  // The slicer hears every change the engine makes (to keep a sliced copy point-in-time) and
  // forwards all of it to the policy (core/snapshot_slicer.h).
  slicer_.set_inner(policy_.get());
  engine.set_observer(&slicer_);

  // Snapshot: devices back with their state (the engine enters restart grace: restarting
  // presenced pages no one, a device that died meanwhile is declared offline when the grace
  // ends and pages after alert_after), then incidents and alerts so firing pages still resolve.
  const auto restore_t0 = std::chrono::steady_clock::now();
  const ingest::ParseLimits ingest_limits;  // a restored device is bounded like a live one
  store::DeviceLimits limits;
  limits.max_id_bytes = ingest_limits.max_id_bytes;
  limits.max_labels = ingest_limits.max_labels;
  limits.max_label_key_bytes = ingest_limits.max_label_key_bytes;
  limits.max_label_value_bytes = ingest_limits.max_label_value_bytes;
  auto loaded = snapshots_.load(anchor_, limits);
  // What the sinks were told after the snapshot was copied (issue 19 item 7): replayed over it so
  // that a crash costs at most a duplicate, never a lost page.
  std::vector<core::AlertIntent> sent;
  if (dispatcher_ && loaded.status == store::LoadStatus::Ok && loaded.snapshot.outbox_seq > 0) {
    for (auto& e : dispatcher_->take_history(loaded.snapshot.outbox_seq)) {
      // One intent is one entry per sink, consecutive: applied once.
      if (!sent.empty() && sent.back().dedup_key == e.intent.dedup_key &&
          sent.back().action == e.intent.action && sent.back().at == e.intent.at)
        continue;
      sent.push_back(std::move(e.intent));
    }
  } else if (dispatcher_) {
    dispatcher_->take_history(std::numeric_limits<std::uint64_t>::max());  // frees it
  }
  if (loaded.status == store::LoadStatus::Ok) {
    bool ok = true;
    std::string error;
    core::PolicySnapshot snap;
    if (naive) {
      ok = naive_.restore(loaded.snapshot.incidents);
      if (!ok) error = "not a naive-mode snapshot";
      if (ok && !sent.empty()) naive_.replay_sent(sent);
    } else {
      ok = core::AlertPolicy::deserialize(loaded.snapshot.incidents, snap, error);
      if (ok && !sent.empty()) {
        std::size_t skipped = 0;
        std::vector<core::AlertIntent> resolve_now;
        const std::size_t applied = core::AlertPolicy::replay_sent(
            sent, snap, loaded.snapshot.devices, &skipped, &resolve_now);
        for (auto& r : resolve_now) {
          r.at = now;
          intents_.push_back(std::move(r));  // submitted with the first batch
        }
        log_("snapshot: replayed " + std::to_string(applied) +
             " alert decision(s) the outbox holds and the snapshot did not (crash before the "
             "next snapshot)" +
             (skipped > 0 ? "; " + std::to_string(skipped) + " could not be applied" : ""));
      }
    }
    engine.restore(loaded.snapshot.devices, now);
    if (!naive) {
      policy_->resync(engine);
      if (ok) {
        policy_->restore(snap, now, [&engine](std::string_view id) { return engine.intern(id); });
        for (const auto& s : policy_->silences())
          if (s.comment.rfind(kConfigSilence, 0) == 0) policy_->remove_silence(s.id, now);
      }
    }
    if (!ok) log_("snapshot: alert state not restored (" + error + "); devices restored");
    log_("snapshot: restored " + std::to_string(loaded.snapshot.devices.size()) +
         " device(s) from " + snapshots_.path());
    restored_ = true;
  } else if (loaded.status != store::LoadStatus::Missing) {
    log_(std::string("snapshot: ") + store::to_string(loaded.status) + " (" + loaded.error +
         "): starting empty");
  }

  if (loaded.status == store::LoadStatus::Ok)
    snapshot_restore_us_ = std::chrono::duration_cast<std::chrono::microseconds>(
                               std::chrono::steady_clock::now() - restore_t0)
                               .count();
  apply_config_silences(config_.alerts.silences, now);
  next_snapshot_ = now + config_.store.snapshot_interval;

  // Context for the on-call (issue 18): a restart of presenced itself, and the silences already
  // active (restored or from the file) as the baseline, so only later changes are noted.
  if (restored_) {
    const std::size_t firing = policy_ ? policy_->firing().size() : naive_.firing();
    note("presenced_restart",
         "presenced restarted: " + std::to_string(loaded.snapshot.devices.size()) +
             " device(s) and " + std::to_string(firing) +
             " firing alert(s) restored from the snapshot; restart grace before any device pages",
         now, {{"devices", std::to_string(loaded.snapshot.devices.size())},
               {"firing", std::to_string(firing)}});
  }
  if (policy_)
    for (const auto& s : policy_->silences())
      if (s.starts_at <= now && now < s.ends_at) active_silences_[s.id] = s;
}

void Alerting::note(std::string cls, std::string summary, core::MonoTime at,
                    std::vector<std::pair<std::string, std::string>> details) {
  if (config_.mode == Mode::naive) return;  // the naive baseline has no context notes
  core::AlertIntent in;
  in.action = core::AlertIntent::Action::Notify;
  in.type = core::AlertIntent::Type::FleetIncident;  // fleet-level context; cls says which
  in.severity = core::Severity::Info;
  in.dedup_key = "presence/note/" + cls + "/" + std::to_string(anchor_.to_wall_ms(at));
  in.cls = std::move(cls);
  in.component = "fleet";
  in.summary = std::move(summary);
  in.details = std::move(details);
  in.at = at;
  intents_.push_back(std::move(in));
}

// Maintenance silences starting and ending (config windows, or added/removed through the API).
// Checked at most once a second: the list is short, but after_batch runs for every batch.
void Alerting::note_silences(core::MonoTime now) {
  if (!policy_ || now < next_silence_check_) return;
  next_silence_check_ = now + std::chrono::seconds(1);
  std::map<std::uint64_t, core::Silence> active;
  for (auto& s : policy_->silences())
    if (s.starts_at <= now && now < s.ends_at) active.emplace(s.id, std::move(s));
  auto describe = [&](const core::Silence& s) {
    std::string m;
    for (const auto& [k, v] : s.match) m += (m.empty() ? "" : ", ") + k + "=" + v;
    return (m.empty() ? std::string("everything") : m) +
           (s.comment.empty() ? "" : " (" + s.comment + ")");
  };
  for (const auto& [id, s] : active)
    if (active_silences_.count(id) == 0)
      note("silence_started",
           "Maintenance silence started: " + describe(s) + " until " +
               alert::iso8601_utc(anchor_.to_wall_ms(s.ends_at)),
           now, {{"silence", std::to_string(id)}, {"ends", alert::iso8601_utc(anchor_.to_wall_ms(s.ends_at))}});
  for (const auto& [id, s] : active_silences_)
    if (active.count(id) == 0)
      note("silence_ended", "Maintenance silence ended: " + describe(s), now,
           {{"silence", std::to_string(id)}});
  active_silences_ = std::move(active);
}

std::size_t Alerting::replace_config_silences(const std::vector<SilenceConfig>& silences,
                                              core::MonoTime now) {
  const std::size_t n = apply_config_silences(silences, now);
  snapshot_due_ = true;  // the snapshot must not bring back what the file no longer says
  return n;
}

std::size_t Alerting::apply_config_silences(const std::vector<SilenceConfig>& silences,
                                            core::MonoTime now) {
  if (!policy_) return 0;
  std::vector<std::uint64_t> old;
  for (const auto& s : policy_->silences())
    if (s.comment.rfind(kConfigSilence, 0) == 0) old.push_back(s.id);
  for (const auto id : old) policy_->remove_silence(id, now);
  std::size_t added = 0;
  for (const auto& sc : silences) {
    core::Silence s;
    for (const auto& [k, v] : sc.match) s.match.emplace_back(k, v);
    s.starts_at = to_mono(sc.starts, anchor_);
    s.ends_at = to_mono(sc.ends, anchor_);
    s.comment = std::string(kConfigSilence) + sc.comment;
    if (s.ends_at <= now) continue;  // over already
    if (policy_->add_silence(std::move(s)) == 0) {
      log_("alerts.silences: invalid silence skipped");
      continue;
    }
    ++added;
  }
  return added;
}

void Alerting::on_event(core::Engine& engine, const core::Event& event) {
  if (config_.mode == Mode::naive) naive_.on_event(engine, event, intents_);
  if (event.kind == core::EventKind::BrokerRestarted) {
    // Several sources report one restart (boot id, $SYS uptime, our own connection): one note a
    // minute at most.
    if (broker_noted_ && event.at - last_broker_note_ < std::chrono::minutes(1)) return;
    broker_noted_ = true;
    last_broker_note_ = event.at;
    note("broker_restart",
         "Broker restart detected: devices reconnecting now are held by restart grace, not paged",
         event.at);
  }
}

void Alerting::submit(std::vector<core::AlertIntent>& intents) {
  if (intents.empty()) return;
  if (intent_observer_) intent_observer_(intents);
  // Alert state changed: snapshot at the end of this batch, so a crash forgets as little as
  // possible of what was sent (presence/store/saver.h for the order).
  snapshot_due_ = true;
  for (const auto& in : intents) {
    if (in.action == core::AlertIntent::Action::Notify) {  // context, not a page (issue 18)
      log_("alert: note " + in.cls + ": " + in.summary);
      continue;
    }
    const bool trigger = in.action == core::AlertIntent::Action::Trigger;
    const bool notify = in.action == core::AlertIntent::Action::Notify;
    ++(trigger ? triggers_ : notify ? notices_ : resolves_);
    // One line per alert decision: what the on-call will see, in the same words.
    if (config_.mode != Mode::naive)
      log_(std::string("alert: ") + (trigger ? "trigger " : notify ? "notify " : "resolve ") + in.dedup_key +
           (in.summary.empty() ? "" : ": " + in.summary));
  }
  if (dispatcher_) {
    dispatcher_->submit(std::move(intents));  // copies into the inbox; never waits for I/O
  }
  intents.clear();
}

// Each incident's lifecycle in the log (opened with the numbers that opened it, then each stage),
// so an operator can tell from the log alone why a page was or was not sent.
void Alerting::log_incidents() {
  for (const auto* inc : policy_->fleet().incidents()) {
    const std::string scope = inc->scope_key.empty() ? "fleet" : inc->scope_key + "=" + inc->scope_value;
    auto [it, fresh] = logged_stage_.try_emplace(inc->id, inc->stage, scope);
    if (!fresh && it->second.first == inc->stage && it->second.second == scope) continue;
    if (!fresh && it->second.second != scope)
      log_("fleet: incident " + std::to_string(inc->id) + " widened from " + it->second.second +
           " to " + scope + ": " + std::to_string(inc->count) + " of " +
           std::to_string(inc->population) + " devices");
    it->second = {inc->stage, scope};
    std::string line = "fleet: incident " + std::to_string(inc->id) + " (" + core::to_string(inc->kind) +
                       ", " + scope + ") " + core::to_string(inc->stage);
    if (fresh && inc->kind != core::IncidentKind::Blind)
      line += ": " + std::to_string(inc->count) + " of " + std::to_string(inc->population) + " devices";
    if (inc->stage == core::IncidentStage::Stragglers)
      line += ": " + std::to_string(inc->stragglers.size()) + " straggler(s)";
    log_(line);
  }
  for (auto it = logged_stage_.begin(); it != logged_stage_.end();)
    it = policy_->fleet().incident(it->first) == nullptr ? logged_stage_.erase(it) : std::next(it);
}

// Issue 19 item 6: what presenced cannot persist is said once (and when it recovers), paged
// (presence/self/persistence, sent from memory: the outbox may be what fails) and shown by /readyz.
void Alerting::check_persistence(core::MonoTime now) {
  std::string outbox_error;
  const bool outbox_failing = dispatcher_ && dispatcher_->outbox_failing(&outbox_error);
  const bool snapshot_failing = snapshots_.failing();
  const bool failing = outbox_failing || snapshot_failing;
  if (failing == persist_failing_.load()) return;
  std::string what;
  if (outbox_failing) what = "the alert outbox (" + outbox_path(config_) + ": " + outbox_error + ")";
  if (snapshot_failing)
    what += (what.empty() ? "" : " and ") + std::string("the snapshot (") + snapshots_.path() +
            ": " + snapshots_.last_error() + ")";
  core::AlertIntent in;
  in.type = core::AlertIntent::Type::Persistence;
  in.severity = core::Severity::Error;
  in.dedup_key = "presence/self/persistence";
  in.component = "presenced";
  in.cls = "persistence";
  in.at = now;
  if (failing) {
    {
      std::lock_guard lock(persist_mu_);
      persist_problem_ = "cannot persist " + what;
    }
    log_("persistence: cannot write " + what +
         ". Judging and paging go on from memory; a crash now loses the state since the last "
         "good write (duplicate or missed pages after the restart). Free space in " +
         config_.store.dir + ".");
    in.action = core::AlertIntent::Action::Trigger;
    in.summary = "presenced cannot persist its state: " + what;
    in.details = {{"store_dir", config_.store.dir}, {"problem", what}};
  } else {
    log_("persistence: writing again to " + config_.store.dir);
    in.action = core::AlertIntent::Action::Resolve;
    in.summary = "presenced persists its state again";
  }
  persist_failing_ = failing;
  intents_.push_back(std::move(in));
}

// Issue 19 item 9: when presence.max_devices is reached, messages about new ids are dropped (and
// counted): a real device that joins now is invisible, which the on-call must hear about. Paged
// once when refusals start, resolved once none happened for kDeviceCapQuiet (expiry made room, or
// the flood ended). Sent like the persistence page: from memory, not through the policy.
void Alerting::check_device_cap(const core::Engine& engine, core::MonoTime now) {
  // Long enough that a flood arriving in waves is one page, short enough that the page does not
  // outlive the problem by much.
  constexpr core::Duration kDeviceCapQuiet = std::chrono::minutes(5);
  const std::uint64_t refused = engine.counters().devices_refused;
  const bool refusing = refused > cap_refused_seen_;
  cap_refused_seen_ = refused;
  if (refusing) cap_last_refusal_ = now;
  const bool active = refusing || (cap_paged_ && now - cap_last_refusal_ < kDeviceCapQuiet);
  if (active == cap_paged_) return;
  cap_paged_ = active;
  core::AlertIntent in;
  in.type = core::AlertIntent::Type::DeviceCap;
  in.severity = core::Severity::Error;
  in.dedup_key = "presence/self/device_cap";
  in.component = "presenced";
  in.cls = "device_cap";
  in.at = now;
  const std::string cap = std::to_string(engine.config().max_devices);
  if (active) {
    log_("devices: presence.max_devices (" + cap +
         ") reached: messages about new device ids are dropped until devices are forgotten "
         "(presence.forget_unconfirmed_after, presence.forget_after) or the cap is raised");
    in.action = core::AlertIntent::Action::Trigger;
    in.summary = "presenced refuses new device ids: presence.max_devices (" + cap + ") reached";
    in.details = {{"max_devices", cap},
                  {"devices", std::to_string(engine.device_count())},
                  {"refused_total", std::to_string(refused)}};
  } else {
    log_("devices: no new id refused for 5m"
         "; presence.max_devices page resolved");
    in.action = core::AlertIntent::Action::Resolve;
    in.summary = "presenced accepts new device ids again";
  }
  intents_.push_back(std::move(in));
}

// Issue 16: while presenced is behind, the engine judges no silence (core/overload.h), so a
// device that really died meanwhile is not paged. A short overload (a burst) only delays
// verdicts; one that lasts overload.alert_after is paged once, as presenced's own problem, and
// resolved when it catches up. Sent from memory like the pages above.
void Alerting::check_overload(const core::Engine& engine, core::MonoTime now) {
  // The decision is the core's (core::OverloadPager, unit tested); this turns it into the page.
  const auto change = overload_pager_.observe(now, engine.overloaded());
  if (!change) return;
  const bool page = *change == core::OverloadPager::Page::Trigger;
  core::AlertIntent in;
  in.type = core::AlertIntent::Type::Overloaded;
  in.severity = core::Severity::Error;
  in.dedup_key = "presence/self/overloaded";
  in.component = "presenced";
  in.cls = "overloaded";
  in.at = now;
  const auto secs =
      std::chrono::duration_cast<std::chrono::seconds>(overload_pager_.overloaded_for(now)).count();
  if (page) {
    log_("overload: presenced has been behind for " + std::to_string(secs) +
         " s; devices are not judged offline on silence until it catches up: paging");
    in.action = core::AlertIntent::Action::Trigger;
    in.summary = "presenced overloaded: no device is judged offline on silence";
    in.details = {{"overloaded_for_s", std::to_string(secs)},
                  {"devices", std::to_string(engine.device_count())}};
  } else {
    log_("overload: presenced caught up; presence/self/overloaded page resolved");
    in.action = core::AlertIntent::Action::Resolve;
    in.summary = "presenced caught up";
  }
  intents_.push_back(std::move(in));
}

std::string Alerting::not_ready_reason() const {
  if (!persist_failing_.load()) return {};
  std::lock_guard lock(persist_mu_);
  return persist_problem_;
}

void Alerting::adopt_open_pages(core::Engine& engine, const std::vector<std::string>& open_keys,
                                core::MonoTime now) {
  if (!policy_) return;
  // Filtered now, while the policy is as it was at the election: a page it has firing is its own
  // (it resolves it itself, even before its view is warm); the rest cannot change until the view
  // is warm (no device page is decided in restart grace or while blind).
  constexpr std::string_view kDevice = "presence/device/";
  std::size_t other = 0, unknown = 0, ours = 0;
  std::string first_other;
  for (const auto& key : open_keys) {
    if (key.rfind(kDevice, 0) != 0) {
      if (other++ == 0) first_other = key;
      continue;
    }
    const std::string_view id = std::string_view(key).substr(kDevice.size());
    // A long id's key ends in a hash of it (policy.cpp make_key): not invertible; left as is.
    const auto d = engine.find(id);
    if (!d || *d == core::kNoDevice) {
      ++unknown;
      continue;
    }
    if (policy_->device_page_open(*d)) {
      ++ours;
      continue;
    }
    if (std::find(adopt_pending_.begin(), adopt_pending_.end(), *d) == adopt_pending_.end())
      adopt_pending_.push_back(*d);
  }
  log_("ha: the notification log shows " + std::to_string(open_keys.size()) + " page(s) open: " +
       std::to_string(ours) + " ours already, " + std::to_string(adopt_pending_.size()) +
       " device page(s) to adopt" +
       (engine.in_restart_grace() || engine.blind() ? " once restart grace is over" : "") +
       (unknown > 0 ? ", " + std::to_string(unknown) + " of devices we do not know (left open)"
                    : "") +
       (other > 0 ? ", " + std::to_string(other) + " not device pages (left as they are; first: " +
                        first_other + ")"
                  : ""));
  apply_adoption(engine, now);
}

void Alerting::apply_adoption(core::Engine& engine, core::MonoTime now) {
  if (adopt_pending_.empty() || !policy_ || engine.in_restart_grace() || engine.blind()) return;
  std::vector<core::AlertPolicy::AdoptedPage> pages;
  pages.reserve(adopt_pending_.size());
  for (const auto d : adopt_pending_) pages.push_back({d, engine.view(d).state});
  adopt_pending_.clear();
  const auto n = policy_->adopt_open_pages(pages, now);
  snapshot_due_ = true;  // adopted pages are open pages: persisted like any other
  log_("ha: adopted " + std::to_string(n.firing + n.resolved) +
       " open page(s) of the notification log: " + std::to_string(n.resolved) +
       " resolved now (device back), " + std::to_string(n.firing) +
       " firing (device down: resolved on its return)" +
       (n.already > 0 ? ", " + std::to_string(n.already) + " ours meanwhile" : ""));
}

void Alerting::after_batch(core::Engine& engine, core::MonoTime now) {
  note_silences(now);
  if (!adopt_pending_.empty()) apply_adoption(engine, now);
  if (policy_) engine.drain_alerts(intents_);
  check_persistence(now);
  check_device_cap(engine, now);
  check_overload(engine, now);
  const bool alerts_changed = !intents_.empty() || !firing_known_;
  submit(intents_);
  healthy_ = !engine.blind();
  if (policy_) {
    std::uint64_t open = 0, held = 0;
    for (const auto* inc : policy_->fleet().incidents())
      if (inc->stage != core::IncidentStage::Closed) {
        ++open;
        held += inc->still_down;
      }
    incidents_open_ = open;
    devices_held_ = held;
    log_incidents();
    // A parent label that would close a cycle (or chain deeper than 16) is refused; said once.
    for (const auto& e : policy_->drain_topology_errors()) log_("topology: " + e);
    alerts_pending_ = policy_->pending();
    const auto pc = policy_->counters();
    const std::uint64_t v[8] = {pc.triggers,          pc.resolves,        pc.device_alerts_cancelled,
                                pc.device_alerts_held, pc.alerts_silenced, pc.devices_grouped,
                                pc.unreachable_held,   pc.parent_cycles_refused};
    for (int i = 0; i < 8; ++i) policy_counters_[i] = v[i];
    devices_unreachable_ = policy_->unreachable();
    // The open set, not triggers - resolves since this process started: alerts restored from the
    // snapshot are open too (issue 19: the gauge read 0 while a page was open after a restart).
    // Recounted only when alerts changed: the firing set moves with intents (and the restore).
    if (alerts_changed) {
      alerts_firing_ = policy_->firing().size();
      firing_known_ = true;
    }
  } else {
    const bool blind = engine.blind();
    if (blind && !naive_blind_) naive_.on_blind(engine, now, intents_);
    naive_blind_ = blind;
    submit(intents_);
    alerts_firing_ = naive_.firing();
  }
  // A snapshot is copied in slices, one per batch (core/snapshot_slicer.h): each slice at most
  // kSliceBudget of the engine thread. After alerts changed, snapshot soon, but keep the copy
  // under ~5 % of the engine thread: at most once per second and per 20 x the engine time the
  // last copy took in all its slices (a crash inside that window only repeats decisions).
  if (slicer_.active()) {
    snapshot_slice(engine);
    return;
  }
  const auto copy = std::chrono::microseconds(snapshot_copy_us_.load());
  const auto min_gap = std::max<core::Duration>(
      std::chrono::seconds(1), std::chrono::duration_cast<core::Duration>(copy * 20));
  if (now >= next_snapshot_ || (snapshot_due_ && now - last_snapshot_ >= min_gap)) {
    last_snapshot_ = now;
    next_snapshot_ = now + config_.store.snapshot_interval;
    slicer_.begin();
    slice_pause_max_ = std::chrono::nanoseconds(0);
    slice_total_ = std::chrono::nanoseconds(0);
    snapshot_slice(engine);
  }
}

void Alerting::snapshot_slice(core::Engine& engine, bool at_once) {
  // Each slice is an engine-thread pause; the longest of a snapshot is
  // presence_snapshot_pause_seconds. The write and fsync happen on the saver thread.
  const auto t0 = std::chrono::steady_clock::now();
  const std::size_t before = slicer_.copied();
  const std::size_t want = at_once ? std::numeric_limits<std::size_t>::max() : slice_devices_;
  const bool done = slicer_.step(engine, want);
  const auto copied_at = std::chrono::steady_clock::now();
  if (done) {
    // The state that goes with the devices, from the same moment (nothing ran in between): the
    // alert policy's copy and the outbox count its decisions reached (presence/store/saver.h).
    store::SnapshotSaver::Copy c;
    c.token = dispatcher_ ? dispatcher_->submitted() : 0;
    if (policy_) {
      // The copy here, with ids as index tokens; the ids and the text on the saver thread, from
      // the device copy of the same moment (presence/store/saver.h).
      auto snap = std::make_shared<core::PolicySnapshot>(
          policy_->snapshot(&core::DeviceCopy::index_token));
      c.render_incidents = [snap](const core::DeviceCopy& devices) {
        core::for_each_id(*snap, [&devices](std::string& id) { devices.resolve(id); });
        return core::to_text(*snap);
      };
    } else {
      c.incidents = naive_.serialize();
    }
    c.devices = slicer_.take();
    c.anchor = anchor_;
    saver_.hand_over(std::move(c));
    snapshot_due_ = false;  // the copy holds every alert decided so far
  }
  const auto t1 = std::chrono::steady_clock::now();
  // Slice size follows the measured copy rate so that a slice takes about kSliceBudget.
  const std::size_t n = slicer_.copied() - before;
  const auto took = copied_at - t0;
  if (!at_once && slice_fixed_ == 0 && n == slice_devices_ && took.count() > 0) {
    const double per_device = std::chrono::duration<double>(took).count() / static_cast<double>(n);
    const double fit = std::chrono::duration<double>(kSliceBudget).count() / per_device;
    slice_devices_ = static_cast<std::size_t>(
        std::clamp(fit, static_cast<double>(kMinSliceDevices), static_cast<double>(kMaxSliceDevices)));
  }
  const auto pause = t1 - t0;
  slice_pause_max_ = std::max<std::chrono::nanoseconds>(slice_pause_max_, pause);
  slice_total_ += pause;
  if (done && !at_once) {
    const auto us = [](std::chrono::nanoseconds d) {
      return std::chrono::duration_cast<std::chrono::microseconds>(d).count();
    };
    snapshot_pause_us_ = us(slice_pause_max_);
    snapshot_copy_us_ = us(slice_total_);
    snapshot_slices_ = slicer_.steps();
    if (us(slice_pause_max_) > snapshot_pause_max_us_.load()) snapshot_pause_max_us_ = us(slice_pause_max_);
  }
}

void Alerting::on_stop(core::Engine& engine, core::MonoTime now) {
  // SIGTERM: the last batch's alerts, then a final snapshot, whole and current (Alerting::stop
  // waits for it). A copy under way is finished (its slices are kept current by the slicer),
  // else one is taken; either way at once: nothing waits for the engine any more.
  after_batch(engine, now);
  if (!slicer_.active()) slicer_.begin();
  while (slicer_.active()) snapshot_slice(engine, /*at_once=*/true);
}

api::AlertMetrics Alerting::metrics() const {
  api::AlertMetrics m;
  m.triggers = triggers_.load();
  m.resolves = resolves_.load();
  m.notices = notices_.load();
  if (dispatcher_) m.dispatcher = dispatcher_->stats();
  m.incidents_open = incidents_open_.load();
  m.devices_held = devices_held_.load();
  m.alerts_firing = alerts_firing_.load();
  m.alerts_pending = alerts_pending_.load();
  for (int i = 0; i < 8; ++i) m.policy[static_cast<std::size_t>(i)] = policy_counters_[i].load();
  m.devices_unreachable = devices_unreachable_.load();
  m.snapshot = snapshots_.stats();
  m.persistence_failing = persist_failing_.load();
  m.snapshot_pause_us = snapshot_pause_us_.load();
  m.snapshot_pause_max_us = snapshot_pause_max_us_.load();
  m.snapshot_copy_us = snapshot_copy_us_.load();
  m.snapshot_slices = snapshot_slices_.load();
  m.snapshot_restore_us = snapshot_restore_us_.load();
  if (watchdog_) m.watchdog = watchdog_->stats();
  return m;
}

}  // namespace presence::app
