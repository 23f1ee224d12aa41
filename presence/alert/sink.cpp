#include "presence/alert/sink.h"

#include <algorithm>

#include "presence/alert/payload.h"

namespace presence::alert {
namespace {

const std::string kJson = "Content-Type: application/json";

class PagerDutySink final : public Sink {
 public:
  explicit PagerDutySink(PagerDutyConfig c)
      : c_(std::move(c)), fields_{c_.routing_key, c_.source} {}
  const SinkConfig& config() const override { return c_.sink; }
  HttpRequest build(const std::vector<OutboxEntry>& batch) const override {
    return {c_.sink.url, pagerduty_body(fields_, batch.front()), {kJson}};
  }
  bool wants(const core::AlertIntent& intent) const override {
    return intent.action != core::AlertIntent::Action::Notify;
  }

 private:
  PagerDutyConfig c_;
  PagerDutyFields fields_;
};

class SlackSink final : public Sink {
 public:
  explicit SlackSink(SlackConfig c) : c_(std::move(c)) {}
  const SinkConfig& config() const override { return c_.sink; }
  std::size_t batch_size(std::size_t queued) const override {
    // A burst is summarised rather than trickled out at one a second for an hour (issue 5).
    if (queued <= c_.summary_threshold) return 1;
    return std::clamp<std::size_t>(queued, 1, std::max<std::size_t>(c_.summary_max, 1));
  }
  Duration min_interval() const override { return c_.min_interval; }
  HttpRequest build(const std::vector<OutboxEntry>& batch) const override {
    std::string body =
        batch.size() == 1 ? slack_body(batch.front()) : slack_summary_body(batch, c_.summary_list);
    return {c_.sink.url, std::move(body), {kJson}};
  }

 private:
  SlackConfig c_;
};

class WebhookSink final : public Sink {
 public:
  explicit WebhookSink(WebhookConfig c) : c_(std::move(c)) {}
  const SinkConfig& config() const override { return c_.sink; }
  HttpRequest build(const std::vector<OutboxEntry>& batch) const override {
    HttpRequest r{c_.sink.url, webhook_body(batch.front()), {kJson}};
    if (!c_.secret.empty()) {
      r.headers.push_back("X-Presence-Signature: " + webhook_signature(c_.secret, r.body));
    }
    return r;
  }

 private:
  WebhookConfig c_;
};

}  // namespace

DeliveryOutcome classify_http(const HttpResponse& r) {
  if (r.status >= 200 && r.status < 300) return DeliveryOutcome::Delivered;
  if (r.status == 408 || r.status == 429) return DeliveryOutcome::Retry;
  if (r.status >= 400 && r.status < 500) return DeliveryOutcome::DeadLetter;
  return DeliveryOutcome::Retry;
}

std::unique_ptr<Sink> make_pagerduty_sink(PagerDutyConfig config) {
  return std::make_unique<PagerDutySink>(std::move(config));
}
std::unique_ptr<Sink> make_slack_sink(SlackConfig config) {
  return std::make_unique<SlackSink>(std::move(config));
}
std::unique_ptr<Sink> make_webhook_sink(WebhookConfig config) {
  return std::make_unique<WebhookSink>(std::move(config));
}

}  // namespace presence::alert
