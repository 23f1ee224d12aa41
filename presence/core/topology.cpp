#include "presence/core/topology.h"

#include <algorithm>

namespace presence::core {

Topology::Node* Topology::node(std::string_view id) {
  auto it = nodes_.find(std::string(id));
  return it == nodes_.end() ? nullptr : &it->second;
}

const Topology::Node* Topology::node(std::string_view id) const {
  auto it = nodes_.find(std::string(id));
  return it == nodes_.end() ? nullptr : &it->second;
}

void Topology::unlink(const std::string& child, Node& n) {
  if (n.parent.empty()) return;
  const std::string old = n.parent;
  n.parent.clear();
  if (Node* p = node(old)) {
    std::erase(p->children, child);
    drop_if_empty(old);
  }
}

void Topology::drop_if_empty(const std::string& id) {
  auto it = nodes_.find(id);
  if (it == nodes_.end()) return;
  const Node& n = it->second;
  // A node that is down is kept: its state must survive until it comes back.
  if (n.parent.empty() && n.children.empty() && !n.down) nodes_.erase(it);
}

std::string Topology::set_parent(std::string_view child, DeviceIndex child_index, std::string_view parent) {
  const std::string c(child);
  if (const Node* cur = node(child); cur != nullptr && cur->parent == parent) {
    if (cur->index != child_index) nodes_[c].index = child_index;
    return {};
  }
  if (parent.empty()) {
    if (Node* n = node(child)) {
      unlink(c, *n);
      ++counters_.parents_set;
      drop_if_empty(c);
    }
    return {};
  }
  if (parent == child) {
    ++counters_.cycles_refused;
    return "device " + c + " is its own parent";
  }
  // Walk up from the new parent: meeting the child closes a cycle. The chain of the new parent
  // plus the child's own subtree must stay within kMaxDepth.
  std::string chain = c + " -> " + std::string(parent);
  std::string_view at = parent;
  for (std::size_t depth = 1 + height(child);; ++depth) {
    if (depth > kMaxDepth) {
      ++counters_.cycles_refused;
      return "parent chain of " + c + " deeper than " + std::to_string(kMaxDepth) + ": " + chain;
    }
    const Node* n = node(at);
    if (n == nullptr || n->parent.empty()) break;
    chain += " -> " + n->parent;
    if (n->parent == child) {
      ++counters_.cycles_refused;
      return "parent cycle: " + chain + "; the parent of " + c + " is not changed";
    }
    at = n->parent;
  }
  Node& n = nodes_[c];
  n.index = child_index;
  unlink(c, n);
  Node& me = nodes_[c];  // unlink may have erased and rehashed
  me.parent = std::string(parent);
  nodes_[me.parent].children.push_back(c);
  ++counters_.parents_set;
  return {};
}

std::size_t Topology::height(std::string_view id) const {
  // Levels below id, capped just past kMaxDepth (a chain that deep is refused anyway).
  std::size_t h = 0;
  std::vector<std::pair<const Node*, std::size_t>> stack;
  if (const Node* n = node(id)) stack.emplace_back(n, 0);
  while (!stack.empty()) {
    auto [n, depth] = stack.back();
    stack.pop_back();
    h = std::max(h, depth);
    if (depth > kMaxDepth) continue;
    for (const auto& c : n->children)
      if (const Node* cn = node(c)) stack.emplace_back(cn, depth + 1);
  }
  return h;
}

std::string_view Topology::parent(std::string_view child) const {
  const Node* n = node(child);
  return n == nullptr ? std::string_view() : std::string_view(n->parent);
}

bool Topology::has_children(std::string_view id) const {
  const Node* n = node(id);
  return n != nullptr && !n->children.empty();
}

std::vector<DeviceIndex> Topology::descendants(std::string_view id) const {
  std::vector<DeviceIndex> out;
  std::vector<std::pair<const Node*, std::size_t>> stack;  // (node, depth): bounded like set_parent
  if (const Node* n = node(id)) stack.emplace_back(n, 0);
  while (!stack.empty()) {
    auto [n, depth] = stack.back();
    stack.pop_back();
    if (depth > kMaxDepth) continue;
    for (const auto& c : n->children) {
      const Node* cn = node(c);
      if (cn == nullptr) continue;
      if (cn->index != kNoDevice) out.push_back(cn->index);
      stack.emplace_back(cn, depth + 1);
    }
  }
  return out;
}

std::size_t Topology::descendant_count(std::string_view id) const { return descendants(id).size(); }

void Topology::set_down(std::string_view id, bool down) {
  Node* n = node(id);
  if (n == nullptr) {
    if (!down) return;  // not a parent, not known: nothing to remember
    n = &nodes_[std::string(id)];
  }
  n->down = down;
  if (!down) drop_if_empty(std::string(id));
}

bool Topology::down(std::string_view id) const {
  const Node* n = node(id);
  return n != nullptr && n->down;
}

std::string Topology::down_ancestor(std::string_view id) const {
  std::string top;
  const Node* n = node(id);
  for (std::size_t depth = 0; n != nullptr && !n->parent.empty() && depth < kMaxDepth; ++depth) {
    const Node* p = node(n->parent);
    if (p != nullptr && p->down) top = n->parent;
    n = p;
  }
  return top;
}

void Topology::forget(std::string_view id) {
  const std::string c(id);
  Node* n = node(id);
  if (n == nullptr) return;
  unlink(c, *n);
  if (Node* again = node(id)) {
    again->index = kNoDevice;
    again->down = false;
  }
  drop_if_empty(c);
}

}  // namespace presence::core
