// The fleet monitor's snapshot text (issue 12 step 5: the encoding lives apart from the incident
// logic in fleet.cpp). FleetMonitor::snapshot() says what is saved; this file says how it reads
// and writes, and the token helpers (percent-encoding) the policy snapshot shares.
//
// Format (v1), one record per line, tokens separated by single spaces, strings percent-encoded:
//   presence-fleet-incidents 1
//   saved_at <ms>
//   next_id <n>
//   incident <id> <kind> <stage> <scope_key> <scope_value> <opened_at> <resolved_at> <grace_from>
//            <back_since|-> <population> <count> <share> <peak_down>
//   held <id>...   down <id>...   stragglers <id>...
//   hint <key> <value> <support> <share_in_incident> <share_in_scope> <lift>
//   end
// Closed incidents are not saved (they page nothing any more).
#include <charconv>
#include <cmath>
#include <string>
#include <string_view>
#include <vector>

#include "presence/core/fleet.h"
#include "presence/core/words.h"

namespace presence::core {

namespace {

// Percent-encoding for the snapshot text: keeps every token free of whitespace.
std::string enc(std::string_view s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  if (s.empty()) return "%";
  for (unsigned char c : s) {
    if (c <= 0x20 || c >= 0x7f || c == '%') {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

bool dec(std::string_view s, std::string& out) {
  out.clear();
  if (s == "%") return true;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out += s[i];
      continue;
    }
    if (i + 2 >= s.size()) return false;
    auto hv = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'A' && c <= 'F') return c - 'A' + 10;
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      return -1;
    };
    int a = hv(s[i + 1]), b = hv(s[i + 2]);
    if (a < 0 || b < 0) return false;
    out += static_cast<char>(a * 16 + b);
    i += 2;
  }
  return true;
}

std::vector<std::string_view> split(std::string_view line) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && line[i] == ' ') ++i;
    std::size_t j = i;
    while (j < line.size() && line[j] != ' ') ++j;
    if (j > i) out.push_back(line.substr(i, j - i));
    i = j;
  }
  return out;
}

bool real(std::string_view s, double& out) {
  if (!snapshot_text::number(s, out)) return false;
  return std::isfinite(out);
}

std::string fmt_double(double v) {
  char buf[64];
  auto [p, ec] = std::to_chars(buf, buf + sizeof buf, v);
  if (ec != std::errc()) return "0";
  return std::string(buf, p);
}

}  // namespace

namespace snapshot_text {
std::string encode(std::string_view s) { return enc(s); }
bool decode(std::string_view token, std::string& out) { return dec(token, out); }
std::vector<std::string_view> split(std::string_view line) { return presence::core::split(line); }
}  // namespace snapshot_text

std::string to_text(const IncidentSnapshot& snap) {
  std::string out = "presence-fleet-incidents 1\n";
  out += "saved_at " + std::to_string(snap.saved_at_ms) + "\n";
  out += "next_id " + std::to_string(snap.next_id) + "\n";
  auto ids = [&out](const char* tag, const std::vector<std::string>& list) {
    out += tag;
    for (const auto& id : list) out += " " + enc(id);
    out += "\n";
  };
  for (const auto& rec : snap.incidents) {
    const Incident& inc = rec.incident;
    out += "incident " + std::to_string(inc.id) + " " + to_string(inc.kind) + " " + to_string(inc.stage) +
           " " + enc(inc.scope_key) + " " + enc(inc.scope_value) + " " + std::to_string(to_ms(inc.opened_at)) +
           " " + std::to_string(to_ms(inc.resolved_at)) + " " + std::to_string(to_ms(inc.grace_from)) + " " +
           (inc.back_since ? std::to_string(to_ms(*inc.back_since)) : std::string("-")) + " " +
           std::to_string(inc.population) + " " + std::to_string(inc.count) + " " + fmt_double(inc.share) + " " +
           std::to_string(inc.peak_down) + "\n";
    ids("held", rec.held_ids);
    ids("down", rec.down_ids);
    ids("stragglers", rec.straggler_ids);
    for (const auto& h : inc.hint)
      out += "hint " + enc(h.key) + " " + enc(h.value) + " " + std::to_string(h.support) + " " +
             fmt_double(h.share_in_incident) + " " + fmt_double(h.share_in_scope) + " " + fmt_double(h.lift) + "\n";
    out += "end\n";
  }
  return out;
}

bool FleetMonitor::deserialize(std::string_view text, IncidentSnapshot& out, std::string& error) {
  out = IncidentSnapshot{};
  std::size_t line_no = 0;
  IncidentSnapshot::Record* cur = nullptr;
  bool header = false;
  auto fail = [&](const std::string& what) {
    error = "fleet snapshot line " + std::to_string(line_no) + ": " + what;
    out = IncidentSnapshot{};
    return false;
  };
  while (!text.empty()) {
    std::size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    ++line_no;
    auto tok = split(line);
    if (tok.empty()) continue;
    if (!header) {
      if (tok.size() != 2 || tok[0] != "presence-fleet-incidents") return fail("not a fleet incident snapshot");
      if (tok[1] != "1") return fail("unsupported version " + std::string(tok[1]));
      header = true;
      continue;
    }
    const std::string_view tag = tok[0];
    if (tag == "saved_at") {
      if (tok.size() != 2 || !snapshot_text::number(tok[1], out.saved_at_ms)) return fail("bad saved_at");
    } else if (tag == "next_id") {
      if (tok.size() != 2 || !snapshot_text::number(tok[1], out.next_id) || out.next_id == 0) return fail("bad next_id");
    } else if (tag == "incident") {
      if (cur != nullptr) return fail("incident without end");
      if (tok.size() != 14) return fail("incident needs 13 fields");
      if (out.incidents.size() >= 100000) return fail("too many incidents");
      out.incidents.emplace_back();
      cur = &out.incidents.back();
      Incident& inc = cur->incident;
      std::int64_t opened = 0, resolved = 0, grace = 0;
      if (!snapshot_text::number(tok[1], inc.id) || inc.id == 0) return fail("bad incident id");
      const auto kind = incident_kind_from_word(tok[2]);
      if (!kind) return fail("bad incident kind");
      inc.kind = *kind;
      // A closed incident is never saved, so "closed" is not a stage a record can have.
      const auto stage = incident_stage_from_word(tok[3]);
      if (!stage || *stage == IncidentStage::Closed) return fail("bad incident stage");
      inc.stage = *stage;
      if (!dec(tok[4], inc.scope_key) || !dec(tok[5], inc.scope_value)) return fail("bad scope");
      if (!snapshot_text::number(tok[6], opened) || !snapshot_text::number(tok[7], resolved) || !snapshot_text::number(tok[8], grace)) return fail("bad time");
      inc.opened_at = mono_ms(opened);
      inc.resolved_at = mono_ms(resolved);
      inc.grace_from = mono_ms(grace);
      if (tok[9] != "-") {
        std::int64_t b = 0;
        if (!snapshot_text::number(tok[9], b)) return fail("bad back_since");
        inc.back_since = mono_ms(b);
      }
      if (!snapshot_text::number(tok[10], inc.population) || !snapshot_text::number(tok[11], inc.count) || !real(tok[12], inc.share) ||
          !snapshot_text::number(tok[13], inc.peak_down))
        return fail("bad counters");
    } else if (tag == "held" || tag == "down" || tag == "stragglers") {
      if (cur == nullptr) return fail(std::string(tag) + " outside an incident");
      auto& list = tag == "held" ? cur->held_ids : tag == "down" ? cur->down_ids : cur->straggler_ids;
      std::string id;
      for (std::size_t i = 1; i < tok.size(); ++i) {
        if (!dec(tok[i], id) || id.empty()) return fail("bad device id");
        list.push_back(id);
      }
    } else if (tag == "hint") {
      if (cur == nullptr) return fail("hint outside an incident");
      if (tok.size() != 7) return fail("hint needs 6 fields");
      CohortHint h;
      if (!dec(tok[1], h.key) || !dec(tok[2], h.value) || !snapshot_text::number(tok[3], h.support) ||
          !real(tok[4], h.share_in_incident) || !real(tok[5], h.share_in_scope) || !real(tok[6], h.lift))
        return fail("bad hint");
      cur->incident.hint.push_back(std::move(h));
    } else if (tag == "end") {
      if (cur == nullptr) return fail("end without incident");
      cur = nullptr;
    } else {
      return fail("unknown record '" + std::string(tag.substr(0, 32)) + "'");
    }
  }
  if (!header) return fail("empty snapshot");
  if (cur != nullptr) return fail("truncated: incident without end");
  return true;
}

}  // namespace presence::core
