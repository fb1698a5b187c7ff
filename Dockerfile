# pandav in a container: build with the Rust image, run on distroless (glibc, no shell)
# as a non-root user. The config comes from the /config volume, state (rotated tokens,
# the link-signing key, upload spools, WebDAV locks) goes to the /state volume.
#
#     docker build -t pandav .
#     docker run -d -p 8080:8080 -v ./pandav.toml:/config/pandav.toml:ro \
#         -v pandav-state:/state pandav
#
# The config must listen on 0.0.0.0 (and so have [[users]]); see examples/compose.yaml.

FROM rust:1-bookworm AS build
WORKDIR /src
# The workspace: the crate, its benches (declared in Cargo.toml) and the test crates
# that are workspace members. Nothing else is needed to build the binary.
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
COPY tests ./tests
RUN cargo build --release --locked --bin pandav \
    && strip target/release/pandav \
    && mkdir -p /out/config /out/state /out/usr/local/bin \
    && cp target/release/pandav /out/usr/local/bin/pandav

FROM gcr.io/distroless/cc-debian12:nonroot
# distroless's nonroot user (uid 65532) owns the volumes.
COPY --from=build --chown=65532:65532 /out/ /
USER 65532:65532
ENV PANDAV_CONFIG=/config/pandav.toml \
    STATE_DIRECTORY=/state
VOLUME ["/config", "/state"]
EXPOSE 8080
# `pandav healthcheck` asks <prefix>/-/health of the config's first listen address.
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
    CMD ["/usr/local/bin/pandav", "healthcheck"]
# SIGTERM: stop accepting, let running requests and streams finish, wait for token
# refreshes, exit 0 (give it [server] shutdown_grace: docker stop -t / stop_grace_period).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/pandav"]
CMD ["serve"]
