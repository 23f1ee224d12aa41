#include "presence/tools/replay/replay.h"

#include <cstdio>
#include <chrono>
#include <memory>
#include <ostream>
#include <thread>
#include <vector>

#include "presence/common/json_string.h"
#include "presence/core/engine.h"
#include "presence/tools/replay/replay_format.h"

namespace presence::tools {

// The inside of a JSON string literal (the callers write the quotes).
std::string json_escape(std::string_view text) {
  const std::string quoted = common::json_string(text);
  return quoted.substr(1, quoted.size() - 2);
}

namespace {

using core::Engine;
using core::MonoTime;
using core::State;

// The core's word, the same one the retained payload's "reason" carries.
const char* reason_word(core::DisconnectReason r) { return core::to_string(r); }

const char* action_word(core::AlertIntent::Action a) {
  switch (a) {
    case core::AlertIntent::Action::Trigger: return "trigger";
    case core::AlertIntent::Action::Resolve: return "resolve";
    case core::AlertIntent::Action::Notify: return "notify";  // context, not a page
  }
  return "trigger";
}

const char* state_colour(State s) {
  switch (s) {
    case State::Online: return "\033[32m";    // green
    case State::Suspect: return "\033[33m";   // yellow
    case State::Offline: return "\033[31m";   // red
    case State::Flapping: return "\033[35m";  // magenta
    case State::Unknown: return "\033[2m";
  }
  return "";
}

std::string lpad(std::string s, std::size_t width) {
  if (s.size() < width) s.insert(0, width - s.size(), ' ');
  return s;
}

std::string pad(std::string_view s, std::size_t width) {
  std::string out(s);
  if (out.size() < width) out.append(width - out.size(), ' ');
  return out;
}

class Runner {
 public:
  Runner(std::string_view name, const ReplayOptions& options, std::ostream& out, std::ostream& err)
      : name_(name), opt_(options), out_(out), err_(err), engine_(options.config) {
    if (opt_.alerts) {
      policy_ = std::make_unique<core::AlertPolicy>(
          opt_.policy, opt_.fleet,
          [this](core::DeviceIndex d) { return std::string(engine_.id_of(d)); });
      engine_.set_observer(policy_.get());
    }
  }
  ~Runner() { engine_.set_observer(nullptr); }
  Runner(const Runner&) = delete;
  Runner& operator=(const Runner&) = delete;

  ReplaySummary run(std::istream& in) {
    std::string text;
    bool too_long = false;
    std::size_t line_no = 0;
    while (read_bounded_line(in, text, too_long)) {
      ++line_no;
      ++sum_.lines;
      if (too_long) {
        if (!bad(line_no, "line longer than " + std::to_string(kMaxLineBytes) + " bytes")) break;
        continue;
      }
      ParsedLine parsed = parse_replay_line(text);
      if (parsed.status == ParsedLine::Status::Blank) continue;
      if (parsed.status == ParsedLine::Status::Error) {
        if (!bad(line_no, parsed.error)) break;
        continue;
      }
      const ReplayLine& line = parsed.line;
      if (sum_.last_at && line.at < *sum_.last_at) {
        // Recorded logs are in arrival order; a step back means a broken or merged file. The
        // engine would process it at its current time, which would silently change the story.
        if (!bad(line_no, "time " + format_time(core::to_ms(line.at)) +
                              " is before the previous line's " +
                              format_time(core::to_ms(*sum_.last_at)))) {
          break;
        }
        continue;
      }
      if (auto refused = feed(line)) {
        if (!bad(line_no, *refused)) break;
      }
    }
    if (!sum_.aborted) {
      if (opt_.until && (!sum_.last_at || *opt_.until > *sum_.last_at)) {
        advance_to(*opt_.until);
        tick(*opt_.until);
        sum_.last_at = *opt_.until;
      } else if (sum_.last_at) {
        tick(*sum_.last_at);
      }
    }
    if (sum_.bad_lines > opt_.max_error_lines) {
      err_ << name_ << ": " << (sum_.bad_lines - opt_.max_error_lines)
           << " more bad lines not shown\n";
    }
    sum_.final_counts = engine_.counts();
    sum_.devices = engine_.device_count();
    if (opt_.summary) print_summary();
    return sum_;
  }

 private:
  // Reports a bad line; returns false if the replay must stop (--strict).
  bool bad(std::size_t line_no, const std::string& reason) {
    ++sum_.bad_lines;
    if (sum_.bad_lines <= opt_.max_error_lines || opt_.strict) {
      err_ << name_ << ":" << line_no << ": " << reason << "\n";
    }
    if (opt_.strict) {
      sum_.aborted = true;
      return false;
    }
    return true;
  }

  // Ticks on the tick_interval grid strictly before `t`, as the service's periodic tick would.
  void advance_to(MonoTime t) {
    if (opt_.tick_interval.count() <= 0 || !next_tick_) return;
    // A log may jump days (or a bad one, years) between lines. The engine fires every timer at its
    // own expiry inside one tick, so past kMaxTicksPerGap grid points the idle stretch is skipped
    // to its last ticks: bounded work, same decisions.
    constexpr std::int64_t kMaxTicksPerGap = 100'000;
    const std::int64_t gap = (t - *next_tick_) / opt_.tick_interval;
    if (gap > kMaxTicksPerGap) *next_tick_ += (gap - kMaxTicksPerGap) * opt_.tick_interval;
    while (*next_tick_ < t) {
      tick(*next_tick_);
      *next_tick_ += opt_.tick_interval;
    }
  }

  void pace(MonoTime t) {
    if (opt_.speed <= 0) return;
    if (!real_start_) real_start_ = std::chrono::steady_clock::now();
    const double sim_s =
        std::chrono::duration<double>(t - *sum_.first_at).count() / opt_.speed;
    std::this_thread::sleep_until(
        *real_start_ + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                           std::chrono::duration<double>(sim_s)));
  }

  void tick(MonoTime t) {
    engine_.tick(t);
    emit();
  }

  // Feeds one parsed line; returns an error if the engine refuses it (nothing is fed then).
  std::optional<std::string> feed(const ReplayLine& line) {
    core::DeviceIndex device = core::kNoDevice;
    if (!sum_.first_at) {
      sum_.first_at = line.at;
      // The grid starts at the first line, not at 0: a log may use large offsets.
      if (opt_.tick_interval.count() > 0) next_tick_ = line.at + opt_.tick_interval;
    }
    pace(line.at);
    advance_to(line.at);
    // Interned after the ticks up to the line: a device forgotten during a long gap
    // (presence.forget_after) is a new device, not a stale index.
    if (has_device(line.kind)) {
      device = engine_.intern(line.device);
      if (device == core::kNoDevice) {
        return "the engine refused device id '" + line.device.substr(0, 40) + "'";
      }
    }
    sum_.last_at = line.at;
    ++sum_.events;
    if (opt_.show_events && (line.kind != ReplayKind::Heartbeat || opt_.show_heartbeats)) {
      echo(line);
    }

    core::Event ev;
    ev.at = line.at;
    ev.source = line.source;
    ev.session = line.session;
    switch (line.kind) {
      case ReplayKind::Tick:
        tick(line.at);
        return std::nullopt;
      case ReplayKind::Label:
        for (const auto& [k, v] : line.labels) engine_.set_label(device, k, v);
        return std::nullopt;
      case ReplayKind::Connect: ev.kind = core::EventKind::Connected; break;
      case ReplayKind::Heartbeat: ev.kind = core::EventKind::Heartbeat; break;
      case ReplayKind::Disconnect:
        ev.kind = core::EventKind::Disconnected;
        ev.reason = line.reason;
        break;
      case ReplayKind::BrokerRestart: ev.kind = core::EventKind::BrokerRestarted; break;
      case ReplayKind::IngestLost: ev.kind = core::EventKind::IngestLost; break;
      case ReplayKind::IngestRestored: ev.kind = core::EventKind::IngestRestored; break;
    }
    ev.device = device;
    engine_.on_event(ev);
    emit();
    return std::nullopt;
  }

  void echo(const ReplayLine& line) {
    if (opt_.json) {
      out_ << "{\"type\":\"event\",\"at\":" << format_time(core::to_ms(line.at)) << ",\"kind\":\""
           << to_string(line.kind) << "\"";
      if (!line.device.empty()) out_ << ",\"device\":\"" << json_escape(line.device) << "\"";
      if (line.kind == ReplayKind::Disconnect) {
        out_ << ",\"reason\":\"" << reason_word(line.reason) << "\"";
      }
      if (line.session != 0) out_ << ",\"session\":" << line.session;
      out_ << "}\n";
      return;
    }
    out_ << dim() << lpad(format_time(core::to_ms(line.at)), 10) << "  . " << to_string(line.kind);
    if (!line.device.empty()) out_ << " " << line.device;
    if (line.kind == ReplayKind::Disconnect) out_ << " reason=" << reason_word(line.reason);
    if (line.session != 0) out_ << " session=" << line.session;
    for (const auto& [k, v] : line.labels) out_ << " " << k << "=" << v;
    out_ << reset() << "\n";
  }

  void emit() {
    transitions_.clear();
    alerts_.clear();
    engine_.drain(transitions_);
    engine_.drain_alerts(alerts_);
    for (const auto& t : transitions_) print(t);
    for (const auto& a : alerts_) print(a);
    fleet_status();
  }

  // Blindness and restart grace are fleet-wide modes, not transitions; a what-if reader needs to
  // see when they begin and end (post-mortem 002: judging devices while blind).
  void fleet_status() {
    const bool blind = engine_.blind();
    const bool grace = engine_.in_restart_grace();
    if (blind != blind_) {
      blind_ = blind;
      fleet_line("blind", blind, blind ? "presenced is blind (broker connection lost)"
                                       : "presenced sees the broker again");
    }
    if (grace != grace_) {
      grace_ = grace;
      fleet_line("restart_grace", grace, grace ? "restart grace begins: nobody is judged offline"
                                               : "restart grace over");
    }
  }

  void fleet_line(const char* what, bool on, const char* text) {
    const std::string at = format_time(core::to_ms(engine_.now()));
    if (opt_.json) {
      out_ << "{\"type\":\"fleet\",\"at\":" << at << ",\"" << what << "\":"
           << (on ? "true" : "false") << "}\n";
      return;
    }
    out_ << lpad(at, 10) << "  " << (opt_.color ? "\033[1;36m" : "") << "FLEET  " << text
         << reset() << "\n";
  }

  void print(const core::Transition& t) {
    ++sum_.transitions;
    std::string kind = std::string(core::to_string(t.from)) + " -> " + core::to_string(t.to);
    ++sum_.transitions_by_kind[kind];
    ++sum_.transitions_by_cause[core::to_string(t.cause)];
    const std::string_view id = engine_.id_of(t.device);
    const bool with_reason = t.cause == core::Cause::Disconnected;
    if (opt_.json) {
      out_ << "{\"type\":\"transition\",\"at\":" << format_time(core::to_ms(t.at))
           << ",\"device\":\"" << json_escape(id) << "\",\"from\":\"" << core::to_string(t.from)
           << "\",\"to\":\"" << core::to_string(t.to) << "\",\"cause\":\""
           << core::to_string(t.cause) << "\"";
      if (with_reason) out_ << ",\"reason\":\"" << reason_word(t.disconnect_reason) << "\"";
      out_ << "}\n";
      return;
    }
    out_ << lpad(format_time(core::to_ms(t.at)), 10) << "  " << pad(id, 18) << " "
         << colour(t.from) << pad(core::to_string(t.from), 8) << reset() << " -> "
         << colour(t.to) << pad(core::to_string(t.to), 8) << reset() << "  "
         << core::to_string(t.cause);
    if (with_reason) out_ << " (" << reason_word(t.disconnect_reason) << ")";
    out_ << "\n";
  }

  void print(const core::AlertIntent& a) {
    ++sum_.alerts;
    if (opt_.json) {
      out_ << "{\"type\":\"alert\",\"at\":" << format_time(core::to_ms(a.at)) << ",\"action\":\""
           << action_word(a.action) << "\",\"alert\":\"" << core::to_string(a.type)
           << "\",\"severity\":\"" << core::to_string(a.severity) << "\",\"dedup_key\":\""
           << json_escape(a.dedup_key) << "\",\"summary\":\"" << json_escape(a.summary)
           << "\",\"component\":\"" << json_escape(a.component) << "\",\"group\":\""
           << json_escape(a.group) << "\",\"class\":\"" << json_escape(a.cls)
           << "\",\"details\":{";
      bool first = true;
      for (const auto& [k, v] : a.details) {
        out_ << (first ? "" : ",") << "\"" << json_escape(k) << "\":\"" << json_escape(v) << "\"";
        first = false;
      }
      out_ << "}}\n";
      return;
    }
    const bool trigger = a.action == core::AlertIntent::Action::Trigger;
    out_ << lpad(format_time(core::to_ms(a.at)), 10) << "  "
         << (opt_.color ? (trigger ? "\033[1;31m" : "\033[1;32m") : "") << "ALERT "
         << pad(action_word(a.action), 7) << " " << core::to_string(a.type) << " ["
         << core::to_string(a.severity) << "] " << a.summary << reset() << "  (dedup_key "
         << a.dedup_key << ")\n";
  }

  void print_summary() {
    const auto span = [&] {
      if (!sum_.first_at || !sum_.last_at) return std::string("-");
      return format_time(core::to_ms(*sum_.first_at)) + " .. " +
             format_time(core::to_ms(*sum_.last_at));
    }();
    if (opt_.json) {
      out_ << "{\"type\":\"summary\",\"lines\":" << sum_.lines << ",\"events\":" << sum_.events
           << ",\"bad_lines\":" << sum_.bad_lines << ",\"aborted\":"
           << (sum_.aborted ? "true" : "false") << ",\"transitions\":" << sum_.transitions
           << ",\"alerts\":" << sum_.alerts << ",\"devices\":" << sum_.devices
           << ",\"transitions_by_kind\":{";
      bool first = true;
      for (const auto& [k, n] : sum_.transitions_by_kind) {
        out_ << (first ? "" : ",") << "\"" << json_escape(k) << "\":" << n;
        first = false;
      }
      out_ << "},\"transitions_by_cause\":{";
      first = true;
      for (const auto& [k, n] : sum_.transitions_by_cause) {
        out_ << (first ? "" : ",") << "\"" << json_escape(k) << "\":" << n;
        first = false;
      }
      out_ << "},\"final_states\":{";
      for (std::size_t s = 0; s < sum_.final_counts.size(); ++s) {
        out_ << (s ? "," : "") << "\"" << core::to_string(static_cast<State>(s))
             << "\":" << sum_.final_counts[s];
      }
      out_ << "}}\n";
      return;
    }
    out_ << "\n== summary: " << sum_.lines << " lines, " << sum_.events << " events, "
         << sum_.bad_lines << " bad lines" << (sum_.aborted ? " (stopped: --strict)" : "")
         << ", simulated " << span << "\n";
    out_ << "transitions: " << sum_.transitions << "\n";
    for (const auto& [k, n] : sum_.transitions_by_kind) {
      out_ << "  " << pad(k, 24) << n << "\n";
    }
    out_ << "by cause:\n";
    for (const auto& [k, n] : sum_.transitions_by_cause) {
      out_ << "  " << pad(k, 24) << n << "\n";
    }
    out_ << "alerts: " << sum_.alerts << "\n";
    out_ << "devices by final state (" << sum_.devices << " devices):";
    for (std::size_t s = 0; s < sum_.final_counts.size(); ++s) {
      out_ << " " << core::to_string(static_cast<State>(s)) << "=" << sum_.final_counts[s];
    }
    out_ << "\n";
    if (opt_.show_final) {
      for (core::DeviceIndex d = 0; d < engine_.size(); ++d) {
        const core::DeviceView v = engine_.view(d);
        out_ << "  " << pad(v.id, 18) << " " << colour(v.state) << pad(core::to_string(v.state), 8)
             << reset() << " since " << format_time(core::to_ms(v.since)) << "  "
             << core::to_string(v.cause) << "\n";
      }
    }
  }

  const char* colour(State s) const { return opt_.color ? state_colour(s) : ""; }
  const char* dim() const { return opt_.color ? "\033[2m" : ""; }
  const char* reset() const { return opt_.color ? "\033[0m" : ""; }

  std::string name_;
  const ReplayOptions& opt_;
  std::ostream& out_;
  std::ostream& err_;
  Engine engine_;
  std::unique_ptr<core::AlertPolicy> policy_;  // after engine_: detached in ~Runner first
  ReplaySummary sum_;
  std::optional<MonoTime> next_tick_;
  bool blind_ = false;
  bool grace_ = false;
  std::optional<std::chrono::steady_clock::time_point> real_start_;
  std::vector<core::Transition> transitions_;
  std::vector<core::AlertIntent> alerts_;
};

}  // namespace

ReplaySummary run_replay(std::istream& in, std::string_view name, const ReplayOptions& options,
                         std::ostream& out, std::ostream& err) {
  Runner runner(name, options, out, err);
  return runner.run(in);
}

}  // namespace presence::tools
