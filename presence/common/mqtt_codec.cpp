#include "presence/common/mqtt_codec.h"

#include <algorithm>
#include <cstring>

namespace presence::mqtt_codec {

namespace {

void put_u16(std::string& out, std::uint16_t v) {
  out.push_back(static_cast<char>(v >> 8));
  out.push_back(static_cast<char>(v & 0xFF));
}

void put_str(std::string& out, std::string_view s) {
  put_u16(out, static_cast<std::uint16_t>(s.size()));
  out.append(s);
}

// Remaining length: 7 bits a byte, continuation bit, at most 4 bytes (268,435,455).
void put_remaining_length(std::string& out, std::size_t len) {
  do {
    auto byte = static_cast<std::uint8_t>(len % 128);
    len /= 128;
    if (len > 0) byte |= 0x80;
    out.push_back(static_cast<char>(byte));
  } while (len > 0);
}

void put_header(std::string& out, PacketType type, std::uint8_t flags, std::size_t remaining) {
  out.push_back(static_cast<char>((static_cast<std::uint8_t>(type) << 4) | (flags & 0x0F)));
  put_remaining_length(out, remaining);
}

std::uint16_t get_u16(std::string_view s, std::size_t at) {
  return static_cast<std::uint16_t>((static_cast<std::uint8_t>(s[at]) << 8) |
                                    static_cast<std::uint8_t>(s[at + 1]));
}

}  // namespace

void encode_connect(std::string& out, const ConnectOptions& o) {
  std::uint8_t flags = 0;
  if (o.clean_session) flags |= 0x02;
  const bool v5 = o.protocol_level == 5;
  std::size_t len = 10 + 2 + o.client_id.size() + (v5 ? 1 : 0);
  if (o.will) {
    flags |= 0x04;
    flags |= static_cast<std::uint8_t>((o.will->qos & 0x03) << 3);
    if (o.will->retain) flags |= 0x20;
    len += 2 + o.will->topic.size() + 2 + o.will->payload.size() + (v5 ? 1 : 0);
  }
  if (o.username) {
    flags |= 0x80;
    len += 2 + o.username->size();
  }
  if (o.password) {
    flags |= 0x40;
    len += 2 + o.password->size();
  }
  put_header(out, PacketType::Connect, 0, len);
  put_str(out, "MQTT");
  out.push_back(v5 ? 5 : 4);  // protocol level
  out.push_back(static_cast<char>(flags));
  put_u16(out, o.keepalive_s);
  if (v5) out.push_back(0);  // CONNECT properties: none
  put_str(out, o.client_id);
  if (o.will) {
    if (v5) out.push_back(0);  // will properties: none
    put_str(out, o.will->topic);
    put_str(out, o.will->payload);
  }
  if (o.username) put_str(out, *o.username);
  if (o.password) put_str(out, *o.password);
}

void encode_publish(std::string& out, std::string_view topic, std::string_view payload,
                    std::uint8_t qos, bool retain, std::uint16_t packet_id, bool dup) {
  std::uint8_t flags = static_cast<std::uint8_t>((qos & 0x03) << 1);
  if (retain) flags |= 0x01;
  if (dup && qos > 0) flags |= 0x08;
  std::size_t len = 2 + topic.size() + payload.size() + (qos > 0 ? 2 : 0);
  put_header(out, PacketType::Publish, flags, len);
  put_str(out, topic);
  if (qos > 0) put_u16(out, packet_id);
  out.append(payload);
}

void encode_puback(std::string& out, std::uint16_t packet_id) {
  put_header(out, PacketType::Puback, 0, 2);
  put_u16(out, packet_id);
}

void encode_subscribe(std::string& out, std::uint16_t packet_id, std::string_view filter,
                      std::uint8_t qos) {
  // SUBSCRIBE has fixed-header flags 0b0010 (3.1.1 section 3.8.1).
  put_header(out, PacketType::Subscribe, 0x02, 2 + 2 + filter.size() + 1);
  put_u16(out, packet_id);
  put_str(out, filter);
  out.push_back(static_cast<char>(qos & 0x03));
}

void encode_pingreq(std::string& out) { put_header(out, PacketType::Pingreq, 0, 0); }
void encode_disconnect(std::string& out) { put_header(out, PacketType::Disconnect, 0, 0); }

std::optional<Connack> parse_connack(const Packet& p) {
  if (p.type != PacketType::Connack || p.body.size() != 2) return std::nullopt;
  auto ack_flags = static_cast<std::uint8_t>(p.body[0]);
  if (ack_flags & 0xFE) return std::nullopt;
  return Connack{(ack_flags & 0x01) != 0, static_cast<std::uint8_t>(p.body[1])};
}

std::optional<PublishView> parse_publish(const PacketView& p) {
  if (p.type != PacketType::Publish) return std::nullopt;
  PublishView pub;
  pub.qos = static_cast<std::uint8_t>((p.flags >> 1) & 0x03);
  pub.retain = (p.flags & 0x01) != 0;
  pub.dup = (p.flags & 0x08) != 0;
  if (pub.qos == 3) return std::nullopt;
  if (p.body.size() < 2) return std::nullopt;
  std::size_t tlen = get_u16(p.body, 0);
  std::size_t at = 2 + tlen;
  if (p.body.size() < at) return std::nullopt;
  pub.topic = p.body.substr(2, tlen);
  if (pub.qos > 0) {
    if (p.body.size() < at + 2) return std::nullopt;
    pub.packet_id = get_u16(p.body, at);
    if (pub.packet_id == 0) return std::nullopt;
    at += 2;
  }
  pub.payload = p.body.substr(at);
  return pub;
}

std::optional<Publish> parse_publish(const Packet& p) {
  const auto v = parse_publish(PacketView{p.type, p.flags, p.body});
  if (!v) return std::nullopt;
  return Publish{std::string(v->topic), std::string(v->payload), v->qos, v->retain, v->dup,
                 v->packet_id};
}

std::optional<std::uint16_t> parse_packet_id(const Packet& p) {
  if (p.type != PacketType::Puback && p.type != PacketType::Suback &&
      p.type != PacketType::Unsuback && p.type != PacketType::Pubrec &&
      p.type != PacketType::Pubrel && p.type != PacketType::Pubcomp)
    return std::nullopt;
  if (p.body.size() < 2) return std::nullopt;
  if (p.type != PacketType::Suback && p.body.size() != 2) return std::nullopt;
  return get_u16(p.body, 0);
}

std::optional<std::uint8_t> parse_suback_code(const Packet& p) {
  if (p.type != PacketType::Suback || p.body.size() != 3) return std::nullopt;
  return static_cast<std::uint8_t>(p.body[2]);
}

// Room for n more bytes at end_. Decoded bytes before pos_ are dropped first (they were views of
// packets the caller has finished with: PacketView is valid until the next feed/prepare), so
// the buffer stays about one read plus one partial packet long.
void Decoder::make_room(std::size_t n) {
  if (pos_ == end_) pos_ = end_ = 0;
  if (cap_ - end_ >= n) return;
  const std::size_t live = end_ - pos_;
  if (pos_ > 0 && cap_ - live >= n) {
    std::memmove(buf_.get(), buf_.get() + pos_, live);
  } else {
    const std::size_t cap = std::max(cap_ * 2, live + n);
    auto bigger = std::make_unique_for_overwrite<char[]>(cap);
    if (live > 0) std::memcpy(bigger.get(), buf_.get() + pos_, live);
    buf_ = std::move(bigger);
    cap_ = cap;
  }
  pos_ = 0;
  end_ = live;
}

void Decoder::feed(std::string_view bytes) {
  if (bytes.empty()) return;
  make_room(bytes.size());
  std::memcpy(buf_.get() + end_, bytes.data(), bytes.size());
  end_ += bytes.size();
}

char* Decoder::prepare(std::size_t n) {
  make_room(n);
  return buf_.get() + end_;
}

void Decoder::commit(std::size_t k) { end_ = std::min(cap_, end_ + k); }

void Decoder::reset() {
  buf_.reset();
  cap_ = pos_ = end_ = 0;
  error_.clear();
  skip_ = 0;
}

Decoder::Status Decoder::next(Packet& out) {
  PacketView v;
  const Status s = next(v);
  if (s == Status::Packet) {
    out.type = v.type;
    out.flags = v.flags;
    out.body.assign(v.body);
  }
  return s;
}

Decoder::Status Decoder::next(PacketView& out) {
  if (!error_.empty()) return Status::Error;
  if (skip_ > 0) {
    const std::size_t n = std::min(skip_, end_ - pos_);
    pos_ += n;
    skip_ -= n;
    if (skip_ > 0) return Status::NeedMore;
  }
  const std::size_t avail = end_ - pos_;
  if (avail < 2) return Status::NeedMore;
  const char* at = buf_.get() + pos_;
  auto first = static_cast<std::uint8_t>(at[0]);
  auto type = static_cast<std::uint8_t>(first >> 4);
  if (type == 0 || type == 15) {
    error_ = "reserved packet type " + std::to_string(type);
    return Status::Error;
  }
  std::size_t remaining = 0;
  std::size_t multiplier = 1;
  std::size_t i = 1;
  while (true) {
    if (i > 4) {
      error_ = "remaining length longer than 4 bytes";
      return Status::Error;
    }
    if (i >= avail) return Status::NeedMore;
    auto byte = static_cast<std::uint8_t>(at[i]);
    remaining += (byte & 0x7F) * multiplier;
    multiplier *= 128;
    ++i;
    if ((byte & 0x80) == 0) break;
  }
  if (remaining > max_packet_ && skip_oversized_) {
    ++skipped_;
    last_skipped_size_ = remaining;
    skip_ = i + remaining;
    return next(out);
  }
  if (remaining > max_packet_) {
    error_ = "packet of " + std::to_string(remaining) + " bytes over the limit of " +
             std::to_string(max_packet_);
    return Status::Error;
  }
  if (avail < i + remaining) return Status::NeedMore;
  out.type = static_cast<PacketType>(type);
  out.flags = static_cast<std::uint8_t>(first & 0x0F);
  out.body = std::string_view(at + i, remaining);
  pos_ += i + remaining;
  return Status::Packet;
}

const char* to_string(PacketType t) {
  switch (t) {
    case PacketType::Connect: return "CONNECT";
    case PacketType::Connack: return "CONNACK";
    case PacketType::Publish: return "PUBLISH";
    case PacketType::Puback: return "PUBACK";
    case PacketType::Pubrec: return "PUBREC";
    case PacketType::Pubrel: return "PUBREL";
    case PacketType::Pubcomp: return "PUBCOMP";
    case PacketType::Subscribe: return "SUBSCRIBE";
    case PacketType::Suback: return "SUBACK";
    case PacketType::Unsubscribe: return "UNSUBSCRIBE";
    case PacketType::Unsuback: return "UNSUBACK";
    case PacketType::Pingreq: return "PINGREQ";
    case PacketType::Pingresp: return "PINGRESP";
    case PacketType::Disconnect: return "DISCONNECT";
  }
  return "UNKNOWN";
}

const char* connack_reason(std::uint8_t code) {
  switch (code) {
    case 0: return "accepted";
    case 1: return "unacceptable protocol version";
    case 2: return "identifier rejected";
    case 3: return "server unavailable";
    case 4: return "bad user name or password";
    case 5: return "not authorized";
  }
  return "unknown return code";
}

}  // namespace presence::mqtt_codec
