// Parents and children (issue 15): the Topology graph, and AlertPolicy's one page per parent on a
// simulated clock (no sleeps; grace windows checked at T-1, T and T+1).
#include "presence/core/topology.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

#include "presence/core/engine.h"
#include "presence/core/policy.h"

using namespace presence::core;
using namespace std::chrono_literals;
using Type = AlertIntent::Type;
using Action = AlertIntent::Action;

namespace {

constexpr std::int64_t kS = 1000;
constexpr std::int64_t kMin = 60 * kS;

struct Sim {
  std::vector<std::string> ids;
  std::vector<State> state;
  AlertPolicy p;
  std::vector<AlertIntent> all;

  static FleetConfig fleet_config() {
    FleetConfig c;
    c.window_resolution = 1ms;
    return c;
  }
  explicit Sim(PolicyConfig pc = {}) : p(std::move(pc), fleet_config(), [this](DeviceIndex d) { return ids.at(d); }) {}

  DeviceIndex add(const std::string& id, const std::string& parent = {}) {
    auto d = static_cast<DeviceIndex>(ids.size());
    ids.push_back(id);
    state.push_back(State::Unknown);
    if (!parent.empty()) p.on_label(d, "parent", parent);
    p.on_label(d, "site", "a");
    to(d, State::Online, 0, Cause::Connected);
    return d;
  }
  void to(DeviceIndex d, State s, std::int64_t t, Cause c = Cause::Disconnected) {
    Transition tr;
    tr.device = d;
    tr.from = state[d];
    tr.to = s;
    tr.cause = c;
    tr.at = mono_ms(t);
    state[d] = s;
    p.on_transition(tr);
    p.drain_alerts(all);
  }
  void down(DeviceIndex d, std::int64_t t) {
    to(d, State::Suspect, t);
    to(d, State::Offline, t + 30 * kS, Cause::OfflineGrace);
  }
  void up(DeviceIndex d, std::int64_t t) { to(d, State::Online, t, Cause::Connected); }
  void tick(std::int64_t t) {
    p.on_tick(mono_ms(t));
    p.drain_alerts(all);
  }
  std::size_t count(Action a) const {
    return static_cast<std::size_t>(std::count_if(all.begin(), all.end(), [&](const AlertIntent& i) { return i.action == a; }));
  }
  std::size_t count(Action a, Type t) const {
    return static_cast<std::size_t>(
        std::count_if(all.begin(), all.end(), [&](const AlertIntent& i) { return i.action == a && i.type == t; }));
  }
  const AlertIntent* last(Action a, Type t) const {
    for (auto it = all.rbegin(); it != all.rend(); ++it)
      if (it->action == a && it->type == t) return &*it;
    return nullptr;
  }
  static std::string detail(const AlertIntent& i, const std::string& key) {
    for (auto& [k, v] : i.details)
      if (k == key) return v;
    return {};
  }
};

// A fleet: one edge node with `children` devices, and `others` unrelated devices.
struct EdgeFleet {
  Sim s;
  DeviceIndex node = 0;
  std::vector<DeviceIndex> kids;
  explicit EdgeFleet(std::size_t children = 20, std::size_t others = 5, PolicyConfig pc = {}) : s(std::move(pc)) {
    node = s.add("edge-1");
    for (std::size_t i = 0; i < children; ++i) kids.push_back(s.add("edge-1/dev-" + std::to_string(i), "edge-1"));
    for (std::size_t i = 0; i < others; ++i) s.add("other-" + std::to_string(i));
  }
  // NDEATH: the node and then every device of it go down in the same instant.
  void die(std::int64_t t) {
    s.to(node, State::Suspect, t);
    for (DeviceIndex d : kids) s.to(d, State::Suspect, t);
    s.to(node, State::Offline, t + 30 * kS, Cause::OfflineGrace);
    for (DeviceIndex d : kids) s.to(d, State::Offline, t + 30 * kS, Cause::OfflineGrace);
  }
};

}  // namespace

TEST_CASE("topology: links, descendants, cycles and depth are refused with a clear error") {
  Topology t;
  CHECK(t.set_parent("gw", 1, "edge").empty());
  CHECK(t.set_parent("dev", 2, "gw").empty());
  CHECK(t.set_parent("edge", 0, "host").empty());
  CHECK(t.parent("dev") == "gw");
  CHECK(t.descendant_count("host") == 3);
  CHECK(t.descendant_count("gw") == 1);
  CHECK(t.has_children("edge"));
  CHECK_FALSE(t.has_children("dev"));

  const std::string cycle = t.set_parent("host", 9, "dev");
  CHECK(cycle == "parent cycle: host -> dev -> gw -> edge -> host; the parent of host is not changed");
  CHECK(t.parent("host").empty());
  CHECK(t.set_parent("x", 5, "x") == "device x is its own parent");
  CHECK(t.counters().cycles_refused == 2);

  // A chain deeper than kMaxDepth is refused: every walk up stays bounded.
  Topology deep;
  for (std::size_t i = 0; i < Topology::kMaxDepth; ++i)
    REQUIRE(deep.set_parent("n" + std::to_string(i), static_cast<DeviceIndex>(i), "n" + std::to_string(i + 1)).empty());
  CHECK(deep.set_parent("n16", 16, "n17").find("deeper than 16") != std::string::npos);

  // Down and unreachable: the topmost ancestor down is the one named.
  t.set_down("gw", true);
  CHECK(t.down_ancestor("dev") == "gw");
  t.set_down("host", true);
  CHECK(t.down_ancestor("dev") == "host");
  CHECK(t.down_ancestor("host").empty());
  t.set_down("host", false);
  t.set_down("gw", false);
  CHECK_FALSE(t.unreachable("dev"));

  // Re-parenting moves the child; removing the link frees it.
  CHECK(t.set_parent("dev", 2, "edge").empty());
  CHECK(t.descendant_count("gw") == 0);
  CHECK(t.set_parent("dev", 2, "").empty());
  CHECK(t.parent("dev").empty());
}

TEST_CASE("edge node with 20 devices dies: exactly one page naming the node and the count, resolved on return") {
  EdgeFleet f;
  f.die(10 * kS);
  f.s.tick(30 * kMin);
  REQUIRE(f.s.count(Action::Trigger) == 1);
  REQUIRE(f.s.last(Action::Trigger, Type::DeviceOffline) != nullptr);
  const AlertIntent page_copy = *f.s.last(Action::Trigger, Type::DeviceOffline);
  const AlertIntent* page = &page_copy;
  CHECK(page->component == "edge-1");
  CHECK(page->summary.find("20 devices behind it unreachable") != std::string::npos);
  CHECK(Sim::detail(*page, "unreachable_behind") == "20");
  CHECK(f.s.p.unreachable() == 20);
  CHECK(f.s.p.unreachable_behind(f.kids[3]) == "edge-1");
  CHECK(f.s.p.counters().unreachable_held == 20);
  // No fleet incident: the fleet monitor saw one drop, not 21.
  CHECK(f.s.p.fleet().incidents().empty());

  // The node returns, its devices are reborn within the grace: one resolve, nothing else.
  f.s.up(f.node, 31 * kMin);
  for (DeviceIndex d : f.kids) f.s.up(d, 31 * kMin + 2 * kS);
  f.s.tick(2 * 60 * kMin);
  CHECK(f.s.count(Action::Trigger) == 1);
  CHECK(f.s.count(Action::Resolve) == 1);
  CHECK(f.s.last(Action::Resolve, Type::DeviceOffline)->dedup_key == page->dedup_key);
  CHECK(f.s.p.unreachable() == 0);
}

TEST_CASE("parent back: children still down are paged once as its stragglers at T, not T-1; resolve when the last returns") {
  PolicyConfig pc;
  pc.parent_return_grace = 2min;
  EdgeFleet f(20, 5, pc);
  f.die(10 * kS);
  f.s.tick(30 * kMin);
  REQUIRE(f.s.count(Action::Trigger) == 1);
  const std::int64_t back = 31 * kMin;
  f.s.up(f.node, back);
  for (std::size_t i = 0; i < 17; ++i) f.s.up(f.kids[i], back + kS);
  const std::int64_t T = back + 2 * kMin;
  f.s.tick(T - 1);
  CHECK(f.s.count(Action::Trigger, Type::Stragglers) == 0);
  f.s.tick(T);
  REQUIRE(f.s.count(Action::Trigger, Type::Stragglers) == 1);
  const AlertIntent st_copy = *f.s.last(Action::Trigger, Type::Stragglers);
  const AlertIntent* st = &st_copy;
  CHECK(st->component == "edge-1");
  CHECK(Sim::detail(*st, "count") == "3");
  CHECK(st->summary.find("3 of 3 devices behind edge-1 did not come back within 120 s") == 0);
  CHECK(st->dedup_key == "presence/parent-stragglers/edge-1/1");
  f.s.tick(T + 1);
  CHECK(f.s.count(Action::Trigger) == 2);  // the node's page and one straggler page: no device pages
  f.s.up(f.kids[17], T + kMin);
  f.s.up(f.kids[18], T + kMin);
  CHECK(f.s.count(Action::Resolve, Type::Stragglers) == 0);
  f.s.up(f.kids[19], T + 2 * kMin);
  CHECK(f.s.count(Action::Resolve, Type::Stragglers) == 1);
  CHECK(f.s.last(Action::Resolve, Type::Stragglers)->dedup_key == st->dedup_key);
}

TEST_CASE("a child back at T-1 of the return grace is no straggler; one back at T is") {
  PolicyConfig pc;
  pc.parent_return_grace = 2min;
  for (std::int64_t delta : {-1, 0}) {
    CAPTURE(delta);
    EdgeFleet f(20, 5, pc);
    f.die(10 * kS);
    f.s.tick(30 * kMin);
    const std::int64_t back = 31 * kMin;
    f.s.up(f.node, back);
    for (std::size_t i = 0; i < 19; ++i) f.s.up(f.kids[i], back + kS);
    const std::int64_t T = back + 2 * kMin;
    f.s.tick(T + delta - 1);
    f.s.up(f.kids[19], T + delta);  // pages due at the same instant are processed first
    f.s.tick(T + 10 * kMin);
    CHECK(f.s.count(Action::Trigger, Type::Stragglers) == (delta < 0 ? 0 : 1));
  }
}

TEST_CASE("a child that dies while its parent is up is paged as itself") {
  EdgeFleet f;
  f.s.down(f.kids[4], 10 * kS);
  f.s.tick(30 * kMin);
  REQUIRE(f.s.count(Action::Trigger) == 1);
  CHECK(f.s.last(Action::Trigger, Type::DeviceOffline)->component == "edge-1/dev-4");
  CHECK(f.s.p.unreachable() == 0);
}

TEST_CASE("a child that dropped just before its parent (alert not sent yet) is part of the parent's page") {
  EdgeFleet f;
  f.s.down(f.kids[4], 0);   // offline at 30 s, its page due at 2.5 min + group_wait
  f.die(60 * kS);
  f.s.tick(30 * kMin);
  REQUIRE(f.s.count(Action::Trigger) == 1);
  CHECK(f.s.last(Action::Trigger, Type::DeviceOffline)->component == "edge-1");
  CHECK(f.s.p.unreachable() == 20);
}

TEST_CASE("parents of parents: the host down is one page naming the host; a gateway behind an edge node") {
  Sim s;
  const DeviceIndex host = s.add("scada-host");
  std::vector<DeviceIndex> nodes, devs;
  for (int n = 0; n < 3; ++n) {
    const std::string node = "edge-" + std::to_string(n);
    nodes.push_back(s.add(node, "scada-host"));
    const DeviceIndex gw = s.add(node + "/gw", node);
    devs.push_back(gw);
    for (int i = 0; i < 4; ++i) devs.push_back(s.add(node + "/gw/dev-" + std::to_string(i), node + "/gw"));
  }
  for (int i = 0; i < 30; ++i) s.add("other-" + std::to_string(i));
  // The host goes offline, then every edge node leaves (by design), then their devices.
  s.to(host, State::Offline, 10 * kS);
  for (DeviceIndex n : nodes) s.down(n, 11 * kS);
  for (DeviceIndex d : devs) s.down(d, 12 * kS);
  s.tick(30 * kMin);
  REQUIRE(s.count(Action::Trigger) == 1);
  const AlertIntent* page = s.last(Action::Trigger, Type::DeviceOffline);
  CHECK(page->component == "scada-host");
  CHECK(Sim::detail(*page, "unreachable_behind") == "18");
  CHECK(s.p.unreachable_behind(devs[1]) == "scada-host");
  CHECK(s.p.fleet().incidents().empty());

  // The host returns, every node and device with it: one resolve.
  s.up(host, 31 * kMin);
  for (DeviceIndex n : nodes) s.up(n, 31 * kMin + kS);
  for (DeviceIndex d : devs) s.up(d, 31 * kMin + 2 * kS);
  s.tick(60 * kMin);
  CHECK(s.count(Action::Trigger) == 1);
  CHECK(s.count(Action::Resolve) == 1);

  // The host fails again; it returns but edge-2 does not: the host's stragglers name edge-2 only
  // (its devices stay unreachable behind it, not paged).
  s.to(host, State::Offline, 70 * kMin);
  for (DeviceIndex n : nodes) s.down(n, 70 * kMin + kS);
  for (DeviceIndex d : devs) s.down(d, 70 * kMin + 2 * kS);
  s.tick(80 * kMin);
  s.up(host, 81 * kMin);
  for (int n = 0; n < 2; ++n) s.up(nodes[n], 81 * kMin + kS);
  for (int i = 0; i < 10; ++i) s.up(devs[i], 81 * kMin + 2 * kS);
  s.tick(100 * kMin);
  CHECK(s.count(Action::Trigger, Type::DeviceOffline) == 2);
  REQUIRE(s.count(Action::Trigger, Type::Stragglers) == 1);
  const AlertIntent* st = s.last(Action::Trigger, Type::Stragglers);
  CHECK(st->component == "scada-host");
  CHECK(Sim::detail(*st, "devices") == "edge-2");
  CHECK(s.p.unreachable_behind(devs[12]) == "edge-2");
  CHECK(s.count(Action::Trigger) == 3);
}

TEST_CASE("a cycle in parent labels is refused, counted and reported once; the old link stays") {
  Sim s;
  const DeviceIndex a = s.add("a");
  const DeviceIndex b = s.add("b", "a");
  s.p.on_label(a, "parent", "b");
  CHECK(s.p.counters().parent_cycles_refused == 1);
  auto errors = s.p.drain_topology_errors();
  REQUIRE(errors.size() == 1);
  CHECK(errors[0] == "parent cycle: a -> b -> a; the parent of a is not changed");
  CHECK(s.p.drain_topology_errors().empty());
  CHECK(s.p.topology().parent("b") == "a");
  CHECK(s.p.topology().parent("a").empty());
  (void)b;
}

TEST_CASE("a broker restart taking every parent down at once is one fleet incident, not one page per parent") {
  Sim s;
  std::vector<DeviceIndex> nodes, kids;
  for (int n = 0; n < 30; ++n) {
    const std::string node = "edge-" + std::to_string(n);
    nodes.push_back(s.add(node));
    for (int i = 0; i < 3; ++i) kids.push_back(s.add(node + "/dev-" + std::to_string(i), node));
  }
  for (DeviceIndex n : nodes) s.to(n, State::Suspect, 10 * kS);
  for (DeviceIndex d : kids) s.to(d, State::Suspect, 10 * kS);
  for (DeviceIndex n : nodes) s.to(n, State::Offline, 40 * kS, Cause::OfflineGrace);
  for (DeviceIndex d : kids) s.to(d, State::Offline, 40 * kS, Cause::OfflineGrace);
  s.tick(30 * kMin);
  CHECK(s.count(Action::Trigger, Type::FleetIncident) == 1);
  CHECK(s.count(Action::Trigger) == 1);
  CHECK(s.p.unreachable() == 90);
}

TEST_CASE("a source-wide parent label on the parent itself means no parent, not an error") {
  Sim s;
  const DeviceIndex bridge = s.add("zigbee2mqtt", "zigbee2mqtt");
  s.add("lamp", "zigbee2mqtt");
  CHECK(s.p.counters().parent_cycles_refused == 0);
  CHECK(s.p.drain_topology_errors().empty());
  CHECK(s.p.topology().parent("zigbee2mqtt").empty());
  CHECK(s.p.topology().parent("lamp") == "zigbee2mqtt");
  (void)bridge;
}

TEST_CASE("after a restart the parent links come back with the snapshot's labels; a parent restored offline holds its children") {
  // No snapshot format change: the parent is a label, and labels are in every snapshot (old ones
  // included); AlertPolicy::resync rebuilds the links and which parents are down.
  Engine engine;
  AlertPolicy policy({}, FleetConfig{}, [&engine](DeviceIndex d) { return std::string(engine.id_of(d)); });
  engine.set_observer(&policy);
  std::vector<DeviceSnapshot> snap(3);
  snap[0].id = "edge-1";
  snap[0].state = State::Offline;
  snap[1].id = "edge-1/dev-0";
  snap[1].state = State::Online;
  snap[1].labels = {{"parent", "edge-1"}};
  snap[2].id = "other";
  snap[2].state = State::Online;
  engine.restore(snap, mono_ms(10 * kS));
  policy.resync(engine);
  CHECK(policy.topology().parent("edge-1/dev-0") == "edge-1");
  const auto child = engine.find("edge-1/dev-0");
  REQUIRE(child);
  CHECK(policy.unreachable_behind(*child) == "edge-1");
  CHECK(policy.unreachable_behind(*engine.find("other")).empty());
}
