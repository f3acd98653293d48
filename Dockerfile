# Multi-stage build of the `ingress-controller` binary into a small non-root image.
#   docker build -t ferry/ingress-controller:0.1.0 .
FROM rust:1.95-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends cmake pkg-config libssl-dev clang \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# OPENSSL_NO_VENDOR (set in .cargo/config.toml) links the distribution's OpenSSL 3.
RUN cargo build --release --locked -p ingress-cli \
    && install -m 0755 target/release/ingress-controller /ingress-controller

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends libssl3 ca-certificates libcap2-bin \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /ingress-controller /usr/local/bin/ingress-controller
# Lets the non-root user bind ports 80/443 with only NET_BIND_SERVICE in its bounding set. The
# second name is ingress-nginx's program, for Deployments that give it as their `command`.
RUN setcap cap_net_bind_service=+ep /usr/local/bin/ingress-controller \
    && ln -s /usr/local/bin/ingress-controller /nginx-ingress-controller \
    && apt-get purge -y libcap2-bin && apt-get autoremove -y
USER 65532:65532
EXPOSE 80 443 10254
ENTRYPOINT ["/usr/local/bin/ingress-controller"]
