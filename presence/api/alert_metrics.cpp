#include "presence/api/alert_metrics.h"

#include <algorithm>

#include "presence/api/prometheus.h"

namespace presence::api {

using prom::family;
using prom::sample;

std::string render_prometheus(const AlertMetrics& m) {
  std::string out;
  family(out, "presence_alert_intents_total", "counter",
         "Alert intents decided (policy or naive mode) and handed to the dispatcher, by action.");
  sample(out, "presence_alert_intents_total", static_cast<double>(m.triggers),
         "action=\"trigger\"");
  sample(out, "presence_alert_intents_total", static_cast<double>(m.resolves),
         "action=\"resolve\"");
  sample(out, "presence_alert_intents_total", static_cast<double>(m.notices),
         "action=\"notify\"");
  if (m.dispatcher) {
    const auto& st = *m.dispatcher;
    family(out, "presence_alerts_total", "counter",
           "Alert deliveries per sink and result (sent, dead_lettered, dropped, coalesced, skipped).");
    for (const auto& s : st.sinks) {
      const std::string l = "sink=\"" + s.name + "\",result=";
      sample(out, "presence_alerts_total", static_cast<double>(s.sent), l + "\"sent\"");
      sample(out, "presence_alerts_total", static_cast<double>(s.dead_lettered),
             l + "\"dead_lettered\"");
      sample(out, "presence_alerts_total", static_cast<double>(s.dropped), l + "\"dropped\"");
      sample(out, "presence_alerts_total", static_cast<double>(s.coalesced), l + "\"coalesced\"");
      sample(out, "presence_alerts_total", static_cast<double>(s.skipped), l + "\"skipped\"");
    }
    family(out, "presence_alert_requests_total", "counter",
           "HTTP requests per sink and result (ok, failed, retried).");
    for (const auto& s : st.sinks) {
      const std::string l = "sink=\"" + s.name + "\",result=";
      sample(out, "presence_alert_requests_total", static_cast<double>(s.requests - std::min(s.requests, s.failed)), l + "\"ok\"");
      sample(out, "presence_alert_requests_total", static_cast<double>(s.failed), l + "\"failed\"");
      sample(out, "presence_alert_requests_total", static_cast<double>(s.retried), l + "\"retried\"");
    }
    family(out, "presence_alert_sink_depth", "gauge", "Entries queued per sink (incl. in flight).");
    for (const auto& s : st.sinks)
      sample(out, "presence_alert_sink_depth", static_cast<double>(s.depth),
             "sink=\"" + s.name + "\"");
    family(out, "presence_alert_sink_failing", "gauge", "1 while the sink's last request failed.");
    for (const auto& s : st.sinks)
      sample(out, "presence_alert_sink_failing", s.failing ? 1 : 0, "sink=\"" + s.name + "\"");
    family(out, "presence_outbox_depth", "gauge", "Live outbox entries, all sinks.");
    sample(out, "presence_outbox_depth", static_cast<double>(st.outbox.depth));
    family(out, "presence_outbox_oldest_age_seconds", "gauge", "Age of the oldest outbox entry.");
    sample(out, "presence_outbox_oldest_age_seconds",
           static_cast<double>(st.outbox_oldest_age_ms) / 1000.0);
    family(out, "presence_outbox_write_failures_total", "counter", "Outbox appends/fsyncs that failed.");
    sample(out, "presence_outbox_write_failures_total",
           static_cast<double>(st.outbox.write_failures));
    family(out, "presence_outbox_corrupt_records_total", "counter",
           "Outbox records skipped at load (checksum, garbage).");
    sample(out, "presence_outbox_corrupt_records_total",
           static_cast<double>(st.outbox.corrupt_records));
  }
  family(out, "presence_incidents_open", "gauge", "Fleet incidents not closed.");
  sample(out, "presence_incidents_open", static_cast<double>(m.incidents_open));
  family(out, "presence_devices_held", "gauge", "Devices held by open incidents, still down.");
  sample(out, "presence_devices_held", static_cast<double>(m.devices_held));
  family(out, "presence_alerts_firing", "gauge", "Alerts triggered and not resolved.");
  sample(out, "presence_alerts_firing", static_cast<double>(m.alerts_firing));
  family(out, "presence_alerts_pending", "gauge",
         "Device alerts waiting for alert_after, a group flush, a silence or sight.");
  sample(out, "presence_alerts_pending", static_cast<double>(m.alerts_pending));
  static const char* const kPolicy[8][2] = {
      {"presence_policy_triggers_total", "Policy triggers."},
      {"presence_policy_resolves_total", "Policy resolves."},
      {"presence_device_alerts_cancelled_total", "Device alerts cancelled (back in time)."},
      {"presence_device_alerts_held_total", "Device alerts held by a fleet incident."},
      {"presence_alerts_silenced_total", "Alerts silenced."},
      {"presence_devices_grouped_total", "Devices sent inside a group alert."},
      {"presence_unreachable_held_total", "Device drops held because a parent (gateway, edge node) was down."},
      {"presence_parent_cycles_refused_total", "Parent labels refused: a cycle or a chain deeper than 16."}};
  family(out, "presence_devices_unreachable", "gauge",
         "Devices that dropped while a parent was down and are not back: held under the parent's page.");
  sample(out, "presence_devices_unreachable", static_cast<double>(m.devices_unreachable));
  for (int i = 0; i < 8; ++i) {
    family(out, kPolicy[i][0], "counter", kPolicy[i][1]);
    sample(out, kPolicy[i][0], static_cast<double>(m.policy[static_cast<std::size_t>(i)]));
  }
  const auto& ss = m.snapshot;
  family(out, "presence_snapshot_saves_total", "counter", "Snapshots written.");
  sample(out, "presence_snapshot_saves_total", static_cast<double>(ss.saves));
  family(out, "presence_snapshot_save_failures_total", "counter", "Snapshot writes that failed.");
  sample(out, "presence_snapshot_save_failures_total", static_cast<double>(ss.save_failures));
  family(out, "presence_snapshot_load_corrupt_total", "counter",
         "Snapshots found corrupt at start (started empty).");
  sample(out, "presence_snapshot_load_corrupt_total", static_cast<double>(ss.load_corrupt));
  family(out, "presence_snapshot_load_repaired_total", "counter",
         "Invalid devices, labels and times dropped or clamped when the snapshot was loaded.");
  sample(out, "presence_snapshot_load_repaired_total", static_cast<double>(ss.load_repaired));
  family(out, "presence_persistence_failing", "gauge",
         "1 while the outbox or the snapshot cannot be written (paged as presence/self/persistence).");
  sample(out, "presence_persistence_failing", m.persistence_failing ? 1 : 0);
  family(out, "presence_snapshot_pause_seconds", "gauge",
         "Longest engine-thread pause (one slice) of the last snapshot copy.");
  sample(out, "presence_snapshot_pause_seconds",
         static_cast<double>(m.snapshot_pause_us) / 1e6);
  family(out, "presence_snapshot_pause_max_seconds", "gauge",
         "Longest engine-thread pause (one slice) of any snapshot copy since start.");
  sample(out, "presence_snapshot_pause_max_seconds",
         static_cast<double>(m.snapshot_pause_max_us) / 1e6);
  family(out, "presence_snapshot_copy_seconds", "gauge",
         "Engine-thread time of the last snapshot copy, all its slices together.");
  sample(out, "presence_snapshot_copy_seconds", static_cast<double>(m.snapshot_copy_us) / 1e6);
  family(out, "presence_snapshot_slices", "gauge", "Slices (batches) the last snapshot copy took.");
  sample(out, "presence_snapshot_slices", static_cast<double>(m.snapshot_slices));
  family(out, "presence_snapshot_write_seconds", "gauge",
         "Saver thread: encode, write and fsync of the last snapshot written.");
  sample(out, "presence_snapshot_write_seconds", static_cast<double>(ss.last_write_us) / 1e6);
  family(out, "presence_snapshot_bytes", "gauge", "Size of the last snapshot written.");
  sample(out, "presence_snapshot_bytes", static_cast<double>(ss.last_bytes));
  family(out, "presence_snapshot_restore_seconds", "gauge",
         "Start-up: reading, decoding and restoring the snapshot (0 without one).");
  sample(out, "presence_snapshot_restore_seconds",
         static_cast<double>(m.snapshot_restore_us) / 1e6);
  if (m.watchdog) {
    const auto& w = *m.watchdog;
    family(out, "presence_watchdog_pings_total", "counter", "Watchdog pings by result.");
    sample(out, "presence_watchdog_pings_total", static_cast<double>(w.pings), "result=\"ok\"");
    sample(out, "presence_watchdog_pings_total", static_cast<double>(w.failures),
           "result=\"failed\"");
    sample(out, "presence_watchdog_pings_total", static_cast<double>(w.skipped),
           "result=\"skipped\"");
  }
  return out;
}

}  // namespace presence::api
