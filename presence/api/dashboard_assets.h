// The dashboard's files, embedded at build time (embed_assets.cmake turns presence/api/dashboard/*
// into a generated .cpp): presenced serves them itself, nothing is fetched from elsewhere.
#pragma once

#include <cstddef>

namespace presence::api {

struct EmbeddedAsset {
  const char* path;  // "/index.html", "/app.js", ...
  const unsigned char* data;
  std::size_t size;
  const char* content_type;
};

extern const EmbeddedAsset kDashboardAssets[];
extern const std::size_t kDashboardAssetCount;

}  // namespace presence::api
