# syntax=docker/dockerfile:1
# rerun-bot container image.
#   docker build -t ghcr.io/example/rerun-bot:0.1.0 .

# --- build -------------------------------------------------------------------
FROM rust:1.95-bookworm AS builder
WORKDIR /app
# The whole source tree is copied (see .dockerignore): Cargo.toml names the test
# and bench targets by path, so a dummy-main dependency layer would need stubs
# for all of them. The registry cache mount (BuildKit) keeps rebuilds quick.
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    cargo build --release --locked --bin rerun-bot

# --- run ---------------------------------------------------------------------
# distroless/cc: glibc, libgcc and CA certificates; no shell, no package manager.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /app/target/release/rerun-bot /usr/local/bin/rerun-bot
USER 65532:65532
# /slack/*, /api/messages (Teams), /healthz, /readyz, /metrics (RERUN_BOT_LISTEN, default 0.0.0.0:8080)
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/rerun-bot"]
CMD ["serve"]
