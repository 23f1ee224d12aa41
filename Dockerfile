# presenced image for compose.yaml (docs/deploy.md): presenced, presence-sim, presence-alert-sink
# and the broker-ext plugin for Mosquitto, on Debian 12 with Debian's own packages only.
#
#   docker build -t presenced:local .
#
# Checked by ctest (test/integration/packaging/check_compose.py): every binary compose.yaml runs
# is built and copied here, and the runtime packages cover the libraries the binaries link.

# --- build ---------------------------------------------------------------------------------------
FROM debian:12 AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake pkg-config \
      libpaho-mqttpp-dev libpaho-mqtt-dev mosquitto-dev \
      libssl-dev libyaml-cpp-dev libcurl4-openssl-dev libcpp-httplib-dev nlohmann-json3-dev \
      libprotobuf-dev protobuf-compiler \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# Tests need a broker and take minutes; they run in CI (.ci/run), not in the image build.
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DWITH_WERROR=ON -DWITH_TESTS=OFF \
 && cmake --build /build -j"$(nproc)" \
      --target presenced presence-sim presence-alert-sink mosquitto_presence \
 && strip --strip-unneeded /build/presence/app/presenced /build/presence/tools/sim/presence-sim \
      /build/presence/tools/alert-sink/presence-alert-sink /build/broker-ext/mosquitto_presence.so

# --- runtime: shared libraries and the broker, no compiler ---------------------------------------
FROM debian:12 AS runtime
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ca-certificates \
      libpaho-mqttpp3-1 libpaho-mqtt1.3 libyaml-cpp0.7 libcurl4 libssl3 libcpp-httplib0.11 \
      libprotobuf-lite32 \
      mosquitto mosquitto-clients etcd-server \
 && rm -rf /var/lib/apt/lists/*
# Non-root: presenced, the simulator and the sink run as "presenced"; mosquitto as the package's
# own "mosquitto" user (compose.yaml). The state directories are volumes in compose.yaml.
RUN useradd --system --user-group --home-dir /var/lib/presenced --shell /usr/sbin/nologin presenced \
 && install -d -o presenced -g presenced -m 0750 /var/lib/presenced \
 && install -d -o presenced -g presenced -m 0755 /var/lib/presence-sim /var/lib/alert-sink \
 && install -d -o presenced -g presenced -m 0700 /var/lib/presenced-etcd
COPY --from=build /build/presence/app/presenced /usr/local/bin/presenced
COPY --from=build /build/presence/tools/sim/presence-sim /usr/local/bin/presence-sim
COPY --from=build /build/presence/tools/alert-sink/presence-alert-sink /usr/local/bin/presence-alert-sink
COPY --from=build /build/broker-ext/mosquitto_presence.so /usr/lib/mosquitto/mosquitto_presence.so
# Defaults when nothing is mounted over /etc/presenced (compose.yaml mounts config/compose).
COPY config/compose/ /etc/presenced/
USER presenced
WORKDIR /var/lib/presenced
EXPOSE 1883 9188 9180
CMD ["presenced", "--config", "/etc/presenced/presenced.yaml"]
