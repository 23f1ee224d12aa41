// The alert policy's snapshot text (issue 12 step 5: the encoding lives apart from the alert
// logic in policy.cpp). AlertPolicy::snapshot() says what is saved; this file how it reads and
// writes. Tokens are the fleet snapshot's (snapshot_text in fleet.h).
//
// Format (v1), one record per line, tokens percent-encoded (snapshot_text):
//   presence-alert-policy 1
//   saved_at <ms>            next_group <n>          next_silence <n>
//   silence <id> <starts_at> <ends_at> <comment> [<key> <value>]...
//   device <id> <phase 0..3> <flapping 0|1> <due|-> <group>
//   group <gid> <dedup_key> <route> <since> <member id>...
//   page <incident> <incident phase 0..3> <stragglers phase 0..3> <due|-> <incident_since> <stragglers_since>
//   held <id> <since> <flapping 0|1>      (issue 11: a held device problem's start)
//   fleet
//   <FleetMonitor::serialize text>
#include <string>
#include <string_view>

#include "presence/core/policy.h"

namespace presence::core {

namespace {

bool parse_due(std::string_view s, std::int64_t& out) {
  if (s == "-") {
    out = kNeverDue;
    return true;
  }
  return snapshot_text::number(s, out);
}

std::string due_text(std::int64_t v) { return v == kNeverDue ? std::string("-") : std::to_string(v); }

}  // namespace

void for_each_id(PolicySnapshot& snap, const std::function<void(std::string&)>& fn) {
  for (auto& d : snap.devices) fn(d.id);
  for (auto& g : snap.groups)
    for (auto& id : g.members) fn(id);
  for (auto& h : snap.held) fn(h.id);
  for (auto& rec : snap.fleet.incidents) {
    for (auto& id : rec.held_ids) fn(id);
    for (auto& id : rec.down_ids) fn(id);
    for (auto& id : rec.straggler_ids) fn(id);
  }
}

std::string to_text(const PolicySnapshot& snap) {
  using snapshot_text::encode;
  std::string out = "presence-alert-policy 1\n";
  out += "saved_at " + std::to_string(snap.saved_at_ms) + "\n";
  out += "next_group " + std::to_string(snap.next_group) + "\n";
  out += "next_silence " + std::to_string(snap.next_silence) + "\n";
  for (const auto& s : snap.silences) {
    out += "silence " + std::to_string(s.id) + " " + std::to_string(to_ms(s.starts_at)) + " " +
           std::to_string(to_ms(s.ends_at)) + " " + encode(s.comment);
    for (const auto& [k, v] : s.match) out += " " + encode(k) + " " + encode(v);
    out += "\n";
  }
  for (const auto& d : snap.devices)
    out += "device " + encode(d.id) + " " + std::to_string(static_cast<int>(d.phase)) + " " +
           (d.flapping ? "1" : "0") + " " + due_text(d.due_ms) + " " + std::to_string(d.group) + "\n";
  for (const auto& g : snap.groups) {
    out += "group " + std::to_string(g.id) + " " + encode(g.key) + " " + encode(g.route) + " " +
           std::to_string(g.since_ms);
    for (const auto& id : g.members) out += " " + encode(id);
    out += "\n";
  }
  for (const auto& p : snap.incident_pages)
    out += "page " + std::to_string(p.incident) + " " + std::to_string(static_cast<int>(p.incident_phase)) + " " +
           std::to_string(static_cast<int>(p.stragglers_phase)) + " " + due_text(p.due_ms) + " " +
           std::to_string(p.incident_since_ms) + " " + std::to_string(p.stragglers_since_ms) + "\n";
  for (const auto& h : snap.held)
    out += "held " + encode(h.id) + " " + std::to_string(h.since_ms) + " " + (h.flapping ? "1" : "0") + "\n";
  out += "fleet\n";
  out += to_text(snap.fleet);
  return out;
}

bool AlertPolicy::deserialize(std::string_view text, PolicySnapshot& out, std::string& error) {
  out = PolicySnapshot{};
  std::size_t line_no = 0;
  bool header = false;
  auto fail = [&](const std::string& what) {
    error = "policy snapshot line " + std::to_string(line_no) + ": " + what;
    out = PolicySnapshot{};
    return false;
  };
  auto phase = [](std::string_view s, std::uint8_t& p) {
    int v = 0;
    if (!snapshot_text::number(s, v) || v < 0 || v > 3) return false;
    p = static_cast<std::uint8_t>(v);
    return true;
  };
  while (!text.empty()) {
    std::size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    ++line_no;
    auto tok = snapshot_text::split(line);
    if (tok.empty()) continue;
    if (!header) {
      if (tok.size() != 2 || tok[0] != "presence-alert-policy") return fail("not an alert policy snapshot");
      if (tok[1] != "1") return fail("unsupported version " + std::string(tok[1].substr(0, 16)));
      header = true;
      continue;
    }
    const std::string_view tag = tok[0];
    if (tag == "saved_at") {
      if (tok.size() != 2 || !snapshot_text::number(tok[1], out.saved_at_ms)) return fail("bad saved_at");
    } else if (tag == "next_group") {
      if (tok.size() != 2 || !snapshot_text::number(tok[1], out.next_group)) return fail("bad next_group");
    } else if (tag == "next_silence") {
      if (tok.size() != 2 || !snapshot_text::number(tok[1], out.next_silence)) return fail("bad next_silence");
    } else if (tag == "silence") {
      if (tok.size() < 5 || (tok.size() - 5) % 2 != 0) return fail("bad silence");
      Silence s;
      std::int64_t a = 0, b = 0;
      if (!snapshot_text::number(tok[1], s.id) || !snapshot_text::number(tok[2], a) || !snapshot_text::number(tok[3], b) ||
          !snapshot_text::decode(tok[4], s.comment))
        return fail("bad silence");
      s.starts_at = mono_ms(a);
      s.ends_at = mono_ms(b);
      for (std::size_t i = 5; i + 1 < tok.size(); i += 2) {
        LabelMatch lm;
        if (!snapshot_text::decode(tok[i], lm.first) || !snapshot_text::decode(tok[i + 1], lm.second))
          return fail("bad silence matcher");
        s.match.push_back(std::move(lm));
      }
      out.silences.push_back(std::move(s));
    } else if (tag == "device") {
      if (tok.size() != 6) return fail("device needs 5 fields");
      PolicySnapshot::Device d;
      if (!snapshot_text::decode(tok[1], d.id) || d.id.empty() || !phase(tok[2], d.phase) ||
          (tok[3] != "0" && tok[3] != "1") || !parse_due(tok[4], d.due_ms) || !snapshot_text::number(tok[5], d.group))
        return fail("bad device");
      d.flapping = tok[3] == "1";
      out.devices.push_back(std::move(d));
    } else if (tag == "group") {
      if (tok.size() < 5) return fail("bad group");
      PolicySnapshot::Group g;
      if (!snapshot_text::number(tok[1], g.id) || !snapshot_text::decode(tok[2], g.key) ||
          !snapshot_text::decode(tok[3], g.route) || !snapshot_text::number(tok[4], g.since_ms))
        return fail("bad group");
      std::string id;
      for (std::size_t i = 5; i < tok.size(); ++i) {
        if (!snapshot_text::decode(tok[i], id) || id.empty()) return fail("bad group member");
        g.members.push_back(id);
      }
      out.groups.push_back(std::move(g));
    } else if (tag == "page") {
      if (tok.size() != 7) return fail("page needs 6 fields");
      PolicySnapshot::IncidentPage p;
      if (!snapshot_text::number(tok[1], p.incident) || !phase(tok[2], p.incident_phase) || !phase(tok[3], p.stragglers_phase) ||
          !parse_due(tok[4], p.due_ms) || !snapshot_text::number(tok[5], p.incident_since_ms) ||
          !snapshot_text::number(tok[6], p.stragglers_since_ms))
        return fail("bad page");
      out.incident_pages.push_back(p);
    } else if (tag == "held") {
      PolicySnapshot::Held h;
      if (tok.size() != 4 || !snapshot_text::decode(tok[1], h.id) || h.id.empty() || !snapshot_text::number(tok[2], h.since_ms) ||
          (tok[3] != "0" && tok[3] != "1"))
        return fail("bad held");
      h.flapping = tok[3] == "1";
      out.held.push_back(std::move(h));
    } else if (tag == "fleet") {
      std::string fleet_error;
      if (!FleetMonitor::deserialize(text, out.fleet, fleet_error)) {
        PolicySnapshot keep_nothing;
        out = keep_nothing;
        error = fleet_error;
        return false;
      }
      return true;
    } else {
      return fail("unknown record '" + std::string(tag.substr(0, 32)) + "'");
    }
  }
  if (!header) return fail("empty snapshot");
  return fail("truncated: no fleet section");
}

}  // namespace presence::core
