// Fuzz target: the durable alert outbox file (presence/alert/outbox.*) and the record framing it
// shares with the snapshot (presence/store/record.*), then the sink payloads built from what was
// loaded (presence/alert/payload.*). The file is on disk: a crash mid-write, a full disk or a bad
// sector can leave anything in it, and a corrupt queue must never stop the service (incident 004).
//
// Input: a whole outbox file when it starts with the magic "PRSOUTBX"; otherwise record payloads
// separated by "\xffREC", which the harness frames with valid checksums (so the mutator works on
// the content, not on CRCs) after a valid header. The file goes to a private temporary directory.
//
// Checks beyond "no crash, no UB": the outbox rewrites a damaged file at open, so opening the
// file again finds it clean and with the same queues; and every loaded entry renders to JSON.
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "presence/alert/outbox.h"
#include "presence/alert/payload.h"
#include "presence/store/record.h"
#include "test/fuzz/fuzz.h"

namespace {

using namespace presence;

const std::string& scratch_dir() {
  static const std::string dir = [] {
    const char* tmp = std::getenv("TMPDIR");
    std::string templ = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") +
                        "/presence-outbox-fuzz-XXXXXX";
    if (mkdtemp(templ.data()) == nullptr) std::abort();
    static const std::string keep = templ;
    std::atexit([] { std::filesystem::remove_all(keep); });
    return templ;
  }();
  return dir;
}

const std::vector<std::string> kSinks = {"pagerduty", "slack", "webhook"};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  std::string file;
  if (input.substr(0, 8) == "PRSOUTBX") {
    file = input;
  } else {
    file = std::string("PRSOUTBX", 8) + std::string("\x01\x00\x00\x00", 4);
    std::string_view rest = input;
    while (!rest.empty()) {
      const auto at = rest.find("\xffREC");
      store::append_record(file, rest.substr(0, at));
      rest.remove_prefix(at == std::string_view::npos ? rest.size() : at + 4);
    }
  }
  store::scan_records(file, [](std::string_view) {});

  const std::string path = scratch_dir() + "/outbox.log";
  std::filesystem::remove(path + ".tmp");
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(file.data(), static_cast<std::streamsize>(file.size()));
  }

  alert::OutboxConfig config;
  config.path = path;
  config.fsync = false;
  config.max_entries_per_sink = 8;  // small, so the bound (coalesce, drop) runs too
  config.log = [](std::string_view) {};
  std::vector<std::size_t> depth;
  {
    alert::Outbox outbox(config);
    std::string error;
    if (!outbox.open(kSinks, &error)) return 0;
    alert::PagerDutyFields pd;
    pd.routing_key = "R0UTINGKEY0123456789012345678901";
    for (const auto& sink : kSinks) {
      const auto taken = outbox.take(sink, 4);
      std::vector<std::uint64_t> settle;
      for (const auto& e : taken) {
        auto intent = e;
        alert::clamp_intent(intent.intent);
        alert::pagerduty_body(pd, intent);
        alert::slack_body(intent);
        alert::webhook_body(intent);
        settle.push_back(e.seq);
      }
      if (!taken.empty()) alert::slack_summary_body(taken, 2);
      if (!settle.empty()) settle.pop_back();
      outbox.settle(settle, alert::Disposition::Delivered);
      std::vector<std::uint64_t> release;
      for (const auto& e : taken) release.push_back(e.seq);
      outbox.release(release);
      depth.push_back(outbox.depth(sink));
    }
  }
  // What open() left on disk must read back clean, with the same queues.
  alert::Outbox again(config);
  std::string error;
  if (!again.open(kSinks, &error)) std::abort();
  const auto stats = again.stats();
  if (stats.corrupt_records != 0 || stats.truncated_tails != 0) std::abort();
  for (std::size_t i = 0; i < kSinks.size(); ++i)
    if (again.depth(kSinks[i]) != depth[i]) std::abort();
  return 0;
}
