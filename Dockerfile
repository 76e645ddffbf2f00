# portico operator image.
#   docker build -t ghcr.io/portico-dev/portico:0.1.0 .

FROM rust:1.95-bookworm AS build
WORKDIR /src
# build.rs compiles the Envoy protos with protox (pure Rust, no protoc) and
# runs `cargo metadata`, so Cargo needs every target Cargo.toml names: the
# [[bench]] entries need benches/. tests/ and examples/ are discovered only
# when present, so they stay out.
COPY Cargo.toml Cargo.lock build.rs ./
COPY src ./src
COPY templates ./templates
COPY benches ./benches
RUN cargo build --release --locked --bin portico

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/portico /usr/local/bin/portico
USER 65532:65532
# 18000: xDS (ADS over mutual TLS). 9090: /healthz, /readyz, /metrics.
EXPOSE 18000 9090
ENTRYPOINT ["/usr/local/bin/portico"]
CMD ["run"]
