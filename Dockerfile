# Bravely as a static (musl) binary in an empty image. Used by fly.toml.
# tests/image.sh (a step of tests/run.sh) builds and runs the final stage below, as written,
# with a real Docker engine; the build stage needs Docker Hub, which the test machines lack.
#
#   docker build -t bravely .
#   docker run -p 8080:8080 -v bravely-data:/data bravely

FROM rust:1-bookworm AS builder
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/*
RUN rustup target add x86_64-unknown-linux-musl
WORKDIR /src
COPY . .
# Assets are embedded at compile time, so the binary is all the final image needs.
# The `dist` profile (fat LTO, stripped) is the shipped binary; tests/run.sh builds the same.
RUN cargo build --profile dist --locked --target x86_64-unknown-linux-musl --bin bravely \
 && cp target/x86_64-unknown-linux-musl/dist/bravely /bravely

FROM scratch
# CA roots for outgoing TLS: error reports to Sentry (rustls reads the system store).
COPY --from=builder /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=builder /bravely /bravely
# Listen on all interfaces inside the container; keep the data on a mounted volume.
ENV BRAVELY_LISTEN=0.0.0.0:8080 \
    BRAVELY_DATA_DIR=/data \
    NO_COLOR=1
EXPOSE 8080
# SIGTERM stops it gracefully: requests in flight get up to 10 s, queued writes finish
# (`docker stop` also waits 10 s by default; give it `-t 15`).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/bravely"]
CMD ["serve"]
