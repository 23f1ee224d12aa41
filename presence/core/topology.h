// Parents and children (issue 15): which device a device is reached through (a Sparkplug edge
// node, a Zigbee2MQTT bridge, a LoRa gateway, a primary host application) and which parents are
// down. Pure bookkeeping by device id: AlertPolicy (policy.h) asks it whether a device that just
// dropped is unreachable behind a parent that is down, and holds that device's page under the
// parent's one page. Rules and the page texts are in docs/core.md "Parents and children".
//
// Why ids and not DeviceIndex: a parent is often named before it is seen (a device's `parent`
// label names its gateway; the gateway's own birth comes later or never), and the core must not
// intern ids from inside an observer callback (engine.h). Parents are few; children are cheap.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "presence/core/event.h"

namespace presence::core {

struct TopologyCounters {
  std::uint64_t parents_set = 0;       // set_parent calls that changed a link
  std::uint64_t cycles_refused = 0;    // set_parent calls refused: the link would close a cycle
};

class Topology {
 public:
  // Longest chain of parents followed (host -> edge node -> gateway -> device is 3). A longer
  // chain is refused like a cycle: the walk up must stay bounded on every transition.
  static constexpr std::size_t kMaxDepth = 16;

  // child's parent is `parent` ("" removes the link). Returns "" or a clear error, and then keeps
  // the previous link: "parent cycle: a -> b -> a", "device is its own parent", "parent chain
  // deeper than 16". `child_index` lets the policy find the children's alerts again.
  std::string set_parent(std::string_view child, DeviceIndex child_index, std::string_view parent);
  // "" = no parent.
  std::string_view parent(std::string_view child) const;
  bool has_children(std::string_view id) const;
  // Every device below id (children, their children, ...), as engine indices, depth first.
  std::vector<DeviceIndex> descendants(std::string_view id) const;
  std::size_t descendant_count(std::string_view id) const;

  // A parent is down while it is Suspect or Offline; its whole subtree is then unreachable.
  void set_down(std::string_view id, bool down);
  bool down(std::string_view id) const;
  // The topmost ancestor of id that is down ("" = none): the one failure the page names. The
  // device itself does not count.
  std::string down_ancestor(std::string_view id) const;
  bool unreachable(std::string_view id) const { return !down_ancestor(id).empty(); }

  // The engine forgot the device: its own link goes; links of its children stay (named by id).
  void forget(std::string_view id);
  bool empty() const { return nodes_.empty(); }
  TopologyCounters counters() const { return counters_; }

 private:
  struct Node {
    DeviceIndex index = kNoDevice;
    bool down = false;
    std::string parent;
    std::vector<std::string> children;
  };
  Node* node(std::string_view id);
  const Node* node(std::string_view id) const;
  void unlink(const std::string& child, Node& n);
  void drop_if_empty(const std::string& id);
  std::size_t height(std::string_view id) const;

  std::unordered_map<std::string, Node> nodes_;
  TopologyCounters counters_;
};

}  // namespace presence::core
