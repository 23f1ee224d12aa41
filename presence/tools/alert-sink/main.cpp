// presence-alert-sink: a local stand-in for PagerDuty, Slack and a webhook receiver, so the demo
// (scripts, compose.yaml) shows every alert presenced sends, live, without sending anything to the
// internet (issue 7). It checks each request the way the real receiver would and answers like it.
//
//   presence-alert-sink [--bind 127.0.0.1] [--port 9180] [--secret S | --secret-env VAR]
//                       [--record FILE]
//
//   POST /v2/enqueue   PagerDuty Events API v2         -> 202 {"status":"success","dedup_key":..}
//   POST /slack/...    Slack incoming webhook          -> 200 "ok"
//   POST /webhook      presenced's generic webhook     -> 200; 401 on a bad X-Presence-Signature
//   GET  /healthz      liveness                        -> 200 "ok"
//
// Every request prints one line on stdout; a refused one (400/401/404) prints "REFUSED" and the
// reason. --record FILE appends one JSON line per request (accepted or not) for scripts and tests.
// --port 0 picks a free port; the "listening on" line says which.
#include <httplib.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <mutex>
#include <random>
#include <string>
#include <thread>

#include "presence/common/iso8601.h"
#include "presence/tools/alert-sink/check.h"

namespace {

using presence::alert_sink::RequestCheck;

// Large enough for a Slack summary of 1000 alerts; bigger bodies get 413 from cpp-httplib.
constexpr std::size_t kMaxBody = 4 * 1024 * 1024;
constexpr int kExitUsage = 2;

struct Options {
  std::string bind = "127.0.0.1";
  int port = 9180;
  std::string secret;
  std::string record;
};

void usage(std::FILE* to) {
  std::fprintf(to,
               "usage: presence-alert-sink [--bind ADDR] [--port N] [--secret S | --secret-env VAR]\n"
               "                           [--record FILE]\n"
               "  --bind ADDR       address to listen on (default 127.0.0.1)\n"
               "  --port N          port (default 9180; 0 = any free port)\n"
               "  --secret S        check X-Presence-Signature on /webhook (HMAC-SHA256)\n"
               "  --secret-env VAR  the same, read from environment variable VAR (keeps it out of ps)\n"
               "  --record FILE     append every request as a JSON line to FILE\n"
               "endpoints: POST /v2/enqueue (PagerDuty), POST /slack/... (Slack), POST /webhook,\n"
               "           GET /healthz\n");
}

bool parse_args(int argc, char** argv, Options& o) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    std::string value;
    const auto eq = a.find('=');
    const bool has_eq = a.rfind("--", 0) == 0 && eq != std::string::npos;
    if (has_eq) {
      value = a.substr(eq + 1);
      a = a.substr(0, eq);
    }
    auto next = [&](std::string& out) {
      if (has_eq) {
        out = value;
        return true;
      }
      if (i + 1 >= argc) {
        std::fprintf(stderr, "presence-alert-sink: %s needs a value\n", a.c_str());
        return false;
      }
      out = argv[++i];
      return true;
    };
    if (a == "-h" || a == "--help") {
      usage(stdout);
      std::exit(0);
    } else if (a == "--bind") {
      if (!next(o.bind)) return false;
    } else if (a == "--port") {
      std::string p;
      if (!next(p)) return false;
      char* end = nullptr;
      const long n = std::strtol(p.c_str(), &end, 10);
      if (p.empty() || *end != '\0' || n < 0 || n > 65535) {
        std::fprintf(stderr, "presence-alert-sink: --port: '%s' is not a port (0..65535)\n", p.c_str());
        return false;
      }
      o.port = static_cast<int>(n);
    } else if (a == "--secret") {
      if (!next(o.secret)) return false;
    } else if (a == "--secret-env") {
      std::string var;
      if (!next(var)) return false;
      const char* s = std::getenv(var.c_str());
      if (!s || !*s) {
        std::fprintf(stderr, "presence-alert-sink: --secret-env: %s is unset or empty\n", var.c_str());
        return false;
      }
      o.secret = s;
    } else if (a == "--record") {
      if (!next(o.record)) return false;
    } else {
      std::fprintf(stderr, "presence-alert-sink: unknown argument '%s'\n", argv[i]);
      return false;
    }
  }
  return true;
}

std::string now_iso() { return presence::common::iso8601_utc_ms(std::chrono::system_clock::now()); }

class Sink {
 public:
  explicit Sink(Options o) : o_(std::move(o)) {
    if (!o_.record.empty()) {
      record_.open(o_.record, std::ios::app);
      if (!record_) throw std::runtime_error("cannot open --record file '" + o_.record + "'");
    }
  }

  void report(const httplib::Request& req, const RequestCheck& v) {
    const std::string t = now_iso();
    std::lock_guard lock(mu_);
    ++(v.ok ? accepted_ : refused_);
    if (v.ok) {
      std::printf("%s %s\n", t.substr(11, 12).c_str(), v.line.c_str());
    } else {
      std::printf("%s REFUSED %s %s %s -> %d: %s\n", t.substr(11, 12).c_str(), v.kind.c_str(),
                  req.method.c_str(), req.path.c_str(), v.status, v.reason.c_str());
    }
    std::fflush(stdout);
    if (record_.is_open()) {
      nlohmann::json j{{"v", 1}, {"t", t}, {"kind", v.kind}, {"path", req.path},
                       {"status", v.status}, {"ok", v.ok}};
      if (!v.ok) j["reason"] = v.reason;
      if (!v.body.is_null()) {
        j["body"] = v.body;
      } else {
        j["raw"] = req.body.substr(0, 1024);
      }
      // ensure_ascii + replace: a body with invalid UTF-8 still makes a valid JSON line.
      record_ << j.dump(-1, ' ', true, nlohmann::json::error_handler_t::replace) << '\n';
      record_.flush();
    }
  }

  std::string fresh_dedup_key() {
    std::lock_guard lock(mu_);
    return "alert-sink-" + std::to_string(++generated_);
  }

  void summary() {
    std::lock_guard lock(mu_);
    std::printf("presence-alert-sink: stopped; %llu accepted, %llu refused\n",
                static_cast<unsigned long long>(accepted_), static_cast<unsigned long long>(refused_));
    std::fflush(stdout);
  }

  const Options& options() const { return o_; }

 private:
  Options o_;
  std::mutex mu_;
  std::ofstream record_;
  unsigned long long accepted_ = 0, refused_ = 0, generated_ = 0;
};

void answer(httplib::Response& res, const RequestCheck& v) {
  res.status = v.status;
  res.set_content(v.response_body, v.content_type.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (!parse_args(argc, argv, o)) {
    usage(stderr);
    return kExitUsage;
  }

  // SIGINT/SIGTERM are taken by a waiting thread (sigwait), not a handler: it can call stop().
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  std::unique_ptr<Sink> sink;
  try {
    sink = std::make_unique<Sink>(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "presence-alert-sink: %s\n", e.what());
    return 1;
  }

  httplib::Server server;
  server.set_payload_max_length(kMaxBody);
  server.Post("/v2/enqueue", [&](const httplib::Request& req, httplib::Response& res) {
    const RequestCheck v = presence::alert_sink::check_pagerduty(req.body, sink->fresh_dedup_key());
    sink->report(req, v);
    answer(res, v);
  });
  server.Post(R"(/slack/.+)", [&](const httplib::Request& req, httplib::Response& res) {
    const RequestCheck v = presence::alert_sink::check_slack(req.path, req.body);
    sink->report(req, v);
    answer(res, v);
  });
  server.Post("/webhook", [&](const httplib::Request& req, httplib::Response& res) {
    const RequestCheck v = presence::alert_sink::check_webhook(
        req.body, req.get_header_value("X-Presence-Signature"), o.secret);
    sink->report(req, v);
    answer(res, v);
  });
  server.Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("ok\n", "text/plain");
  });
  // Anything else is a misconfigured URL in presenced: say so loudly rather than answer 404 quietly.
  server.set_error_handler([&](const httplib::Request& req, httplib::Response& res) {
    if (res.status != 404 && res.status != 405) return;
    RequestCheck v;
    v.kind = "unknown";
    v.status = res.status;
    v.reason = "no such endpoint (POST /v2/enqueue, /slack/..., /webhook)";
    v.body = nullptr;
    sink->report(req, v);
    res.set_content(v.reason + "\n", "text/plain");
  });

  int port = o.port;
  if (port == 0) {
    port = server.bind_to_any_port(o.bind);
    if (port <= 0) {
      std::fprintf(stderr, "presence-alert-sink: cannot bind %s (any port)\n", o.bind.c_str());
      return 1;
    }
  } else if (!server.bind_to_port(o.bind, port)) {
    std::fprintf(stderr, "presence-alert-sink: cannot bind %s:%d\n", o.bind.c_str(), port);
    return 1;
  }
  std::printf("presence-alert-sink: listening on %s:%d (webhook signatures %s%s%s)\n", o.bind.c_str(),
              port, o.secret.empty() ? "not checked" : "checked",
              o.record.empty() ? "" : ", recording to ", o.record.c_str());
  std::fflush(stdout);

  std::atomic<bool> stopping{false};
  std::thread waiter([&] {
    int sig = 0;
    sigwait(&stop_signals, &sig);
    stopping = true;
    server.stop();
  });
  const bool ok = server.listen_after_bind();
  // listen_after_bind returned on its own (error): wake the waiter so it can be joined.
  if (!stopping) pthread_kill(waiter.native_handle(), SIGTERM);
  waiter.join();
  sink->summary();
  return ok ? 0 : 1;
}
