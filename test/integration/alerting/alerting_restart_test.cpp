// Issue 19 items 1, 6 and 7: restarts never lose a page. Real mosquitto, real presenced,
// presence-sim, the validating PagerDuty mock; presenced is SIGKILLed at the moment that used to
// lose a page.
#include <doctest/doctest.h>

#include <sys/mount.h>

#include "test/integration/alerting/harness.h"

namespace presence::atest {

namespace {

std::size_t count_of(const std::string& text, const std::string& needle) {
  std::size_t n = 0;
  for (auto p = text.find(needle); p != std::string::npos; p = text.find(needle, p + 1)) ++n;
  return n;
}

// sim truth lines for one device and event ("connect", "die").
std::size_t truth_events(const Sim& sim, const std::string& device, const std::string& event) {
  std::size_t n = 0;
  std::istringstream in(sim.truth());
  for (std::string line; std::getline(in, line);)
    if (line.find("\"event\":\"" + event + "\"") != std::string::npos &&
        line.find("\"device\":\"" + device + "\"") != std::string::npos)
      ++n;
  return n;
}

}  // namespace

TEST_CASE("issue 19/1: SIGKILL while a paged device is back but not yet stable: the page resolves, "
          "presence_alerts_firing is the open set across the restart") {
  test::Mosquitto broker;
  broker.start();
  MockPagerDuty pd;
  PresencedOptions o;
  o.online_stable_for = "6s";  // the window the kill lands in
  Presenced p(broker.port(), pd.url(), o);
  p.start();
  // Heartbeats off: after the restart the device says nothing live, only its retained birth
  // (session-only devices; the probe of issue 19 had them).
  Sim sim(broker.port(), 10, "  - at: 3s\n    die: {devices: dev-000003, back_after: 5s}\n", "1",
          "0");
  const std::string key = "presence/device/dev-000003";
  REQUIRE_MESSAGE(pd.wait_events("trigger", key, 1, 30s), dump(pd.events()) << p.log());
  CHECK(p.metric("presence_alerts_firing") == 1);
  // Back (a second connect), not yet online_stable_for: presenced still says offline.
  REQUIRE(wait_for([&] { return truth_events(sim, "dev-000003", "connect") >= 2; }, 20s));
  std::this_thread::sleep_for(1500ms);  // the snapshot after the trigger is on disk
  REQUIRE(p.stop(SIGKILL) != 0);
  CHECK(pd.count("resolve", key) == 0);
  p.start();
  // Restored firing: the gauge is the open set, not triggers - resolves of this process.
  CHECK(p.metric("presence_alerts_firing") == 1);
  REQUIRE_MESSAGE(pd.wait_events("resolve", key, 1, 40s), dump(pd.events()) << p.log());
  CHECK(wait_for([&] { return p.metric("presence_alerts_firing") == 0; }, 5s));
  CHECK(pd.duplicates().empty());
  CHECK(pd.errors().empty());
}

TEST_CASE("issue 19/7: resolve delivered, killed before the next snapshot: no duplicate resolve, "
          "the next outage pages") {
  test::Mosquitto broker;
  broker.start();
  MockPagerDuty pd;
  Presenced p(broker.port(), pd.url());
  p.start();
  Sim sim(broker.port(), 10,
          "  - at: 3s\n    die: {devices: dev-000003, back_after: 6s}\n"
          "  - at: 28s\n    die: {devices: dev-000003, back_after: 6s}\n");
  const std::string key = "presence/device/dev-000003";
  const std::string snapshot = p.store_dir() + "/snapshot.bin";
  REQUIRE_MESSAGE(pd.wait_events("trigger", key, 1, 30s), dump(pd.events()) << p.log());
  std::this_thread::sleep_for(1500ms);
  // The snapshot as it was while the page was open: what a crash before the next one leaves.
  std::filesystem::copy_file(snapshot, snapshot + ".stale");
  REQUIRE_MESSAGE(pd.wait_events("resolve", key, 1, 30s), dump(pd.events()) << p.log());
  REQUIRE(p.stop(SIGKILL) != 0);
  std::filesystem::rename(snapshot + ".stale", snapshot);
  p.start();
  CHECK(p.log().find("snapshot: replayed 1 alert decision(s)") != std::string::npos);
  // The second outage (sim 28 s) pages and resolves once.
  REQUIRE_MESSAGE(pd.wait_events("trigger", key, 2, 45s), dump(pd.events()) << p.log());
  REQUIRE_MESSAGE(pd.wait_events("resolve", key, 2, 30s), dump(pd.events()) << p.log());
  std::this_thread::sleep_for(1s);
  MESSAGE("pages: " << dump(pd.events()));
  CHECK(pd.count("trigger", key) == 2);
  CHECK(pd.count("resolve", key) == 2);
  CHECK(pd.duplicates().empty());
  CHECK(pd.errors().empty());
}

TEST_CASE("issue 19/6: full disk after a crash: presenced starts, pages, pages its own problem, "
          "/readyz says it, logs it once") {
  test::TempDir mnt;
  const std::string dir = mnt.file("store");
  std::filesystem::create_directories(dir);
  if (::mount("tmpfs", dir.c_str(), "tmpfs", 0, "size=256k") != 0) {
    MESSAGE("skipped: cannot mount a tmpfs (needs root): " << std::strerror(errno));
    return;
  }
  struct Unmount {
    std::string d;
    ~Unmount() { ::umount2(d.c_str(), MNT_DETACH); }
  } unmount{dir};

  test::Mosquitto broker;
  broker.start();
  MockPagerDuty pd;
  Presenced p(broker.port(), pd.url());
  // The store on the small file system (the harness's default dir is replaced by a symlink).
  std::filesystem::remove_all(p.store_dir());
  std::filesystem::create_directory_symlink(dir, p.store_dir());
  p.start();
  Sim sim(broker.port(), 10,
          "  - at: 3s\n    die: {devices: dev-000003, back_after: 4s}\n"
          "  - at: 20s\n    die: {devices: dev-000004}\n");
  REQUIRE_MESSAGE(pd.wait_events("trigger", "presence/device/dev-000003", 1, 30s), p.log());
  REQUIRE(p.stop(SIGKILL) != 0);
  // A crash mid-append (a torn tail forces a rewrite at start), then the disk fills up.
  {
    std::ofstream out(dir + "/outbox.log", std::ios::app | std::ios::binary);
    out << std::string("PRC1\x40\x00\x00\x00", 8);
  }
  {
    std::ofstream fill(dir + "/fill", std::ios::binary);
    const std::string block(4096, 'x');
    while (fill.write(block.data(), block.size())) {
    }
  }
  p.start("/healthz");  // used to exit 1: "write .../outbox.log.tmp: No space left on device"
  CHECK(wait_for([&] { return p.status("/readyz") == 503; }, 10s));
  REQUIRE_MESSAGE(pd.wait_events("trigger", "presence/self/persistence", 1, 20s), p.log());
  CHECK(p.metric("presence_persistence_failing") == 1);
  // Still judging and paging: dev-000003 came back (resolve), dev-000004 dies (trigger).
  REQUIRE_MESSAGE(pd.wait_events("resolve", "presence/device/dev-000003", 1, 30s), p.log());
  REQUIRE_MESSAGE(pd.wait_events("trigger", "presence/device/dev-000004", 1, 40s), p.log());
  const std::string log = p.log();
  CHECK(count_of(log, "persistence: cannot write") == 1);
  CHECK(count_of(log, "snapshot: cannot save") <= 1);
  // Space again: the self-page resolves, /readyz is 200.
  std::filesystem::remove(dir + "/fill");
  REQUIRE_MESSAGE(pd.wait_events("resolve", "presence/self/persistence", 1, 20s), p.log());
  CHECK(wait_for([&] { return p.status("/readyz") == 200; }, 10s));
  CHECK(p.metric("presence_persistence_failing") == 0);
  CHECK(pd.errors().empty());
  CHECK(pd.duplicates().empty());
}

}  // namespace presence::atest
