#include "test/support/observer.h"

#include "test/support/presenced.h"
#include "test/support/process.h"

namespace presence::test {

Observer::Observer(const std::string& uri) : client_(uri, "observer-" + unique_suffix()) {
  client_.set_message_callback([this](mqtt::const_message_ptr m) { on_message(*m); });
  client_.set_connected_handler([this](const std::string&) {
    try {
      client_.subscribe("presence/#", 1);
    } catch (...) {
    }
  });
  auto opts = mqtt::connect_options_builder()
                  .clean_session(true)
                  .automatic_reconnect(100ms, 500ms)
                  .keep_alive_interval(5s)
                  .finalize();
  client_.connect(opts)->wait();
}

Observer::~Observer() {
  try {
    client_.disconnect()->wait_for(2s);
  } catch (...) {
  }
  client_.disable_callbacks();
  wait_for([&] { return in_flight_.load() == 0; }, 2s, 5ms);
}

std::string Observer::state(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = latest_.find(id);
  return it == latest_.end() ? std::string() : it->second.value("state", "");
}

nlohmann::json Observer::latest(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = latest_.find(id);
  return it == latest_.end() ? nlohmann::json() : it->second;
}

std::vector<std::string> Observer::history(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  return history_[id];
}

std::vector<std::string> Observer::ever(const std::string& state) {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::string> out;
  for (const auto& [id, h] : history_)
    for (const auto& s : h)
      if (s == state) {
        out.push_back(id);
        break;
      }
  return out;
}

std::size_t Observer::count_in(const std::string& state) {
  std::lock_guard<std::mutex> lock(mu_);
  std::size_t n = 0;
  for (const auto& [id, j] : latest_) n += j.value("state", "") == state ? 1 : 0;
  return n;
}

nlohmann::json Observer::fleet() {
  std::lock_guard<std::mutex> lock(mu_);
  return fleet_;
}

bool Observer::wait_state(const std::string& id, const std::string& state,
                          std::chrono::milliseconds timeout) {
  return wait_for([&] { return this->state(id) == state; }, timeout);
}

void Observer::on_message(const mqtt::message& m) {
  ++in_flight_;
  struct Done {
    std::atomic<int>& n;
    ~Done() { --n; }
  } done{in_flight_};
  const std::string& topic = m.get_topic();
  auto j = nlohmann::json::parse(m.get_payload_str(), nullptr, false);
  if (j.is_discarded()) return;
  std::lock_guard<std::mutex> lock(mu_);
  static const std::string prefix = "presence/devices/";
  if (topic.rfind(prefix, 0) == 0) {
    const std::string id = topic.substr(prefix.size());
    latest_[id] = j;
    auto& h = history_[id];
    const std::string s = j.value("state", "");
    if (h.empty() || h.back() != s) h.push_back(s);
  } else if (topic == "presence/fleet") {
    fleet_ = j;
  }
}

}  // namespace presence::test
