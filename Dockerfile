# One image for every Vacancy service (compose.yaml picks the executable per container).
# Build:  docker build -t vacancy:local .     Run: docker compose up
ARG SWIFT_VERSION=6.3.1

# ---- build: the four release executables, linked with the Swift runtime statically
FROM swift:${SWIFT_VERSION}-bookworm AS build
RUN apt-get update -qq && apt-get install -y -qq libssl-dev openssl && rm -rf /var/lib/apt/lists/*
WORKDIR /build
COPY Package.swift ./
# SwiftPM checks that every target's folder exists before it resolves.
COPY Shared Shared
COPY Services Services
COPY Benchmarks Benchmarks
COPY Tests Tests
RUN swift package resolve
ENV SWIFT_DETERMINISTIC_HASHING=1
# No run-time exclusivity checks, as `make run` builds (scripts/release-bin.sh says why).
RUN swift build -c release --static-swift-stdlib -Xswiftc -enforce-exclusivity=unchecked \
      --product vacancy-bookings --product vacancy-availability --product vacancy-fanout --product vacancy-router
WORKDIR /staging
RUN bin="$(swift build --package-path /build -c release --show-bin-path)" \
 && cp "$bin"/vacancy-bookings "$bin"/vacancy-availability "$bin"/vacancy-fanout "$bin"/vacancy-router ./ \
 && find -L "$bin/" -maxdepth 1 -regex '.*\.resources$' -exec cp -Ra {} ./ \; \
 && cp -R /build/Services/Router/Web ./web \
 && mkdir tls \
 && openssl req -x509 -newkey rsa:2048 -nodes -days 825 -subj "/CN=localhost" \
      -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" -keyout tls/key.pem -out tls/cert.pem 2>/dev/null

# ---- run: a small Debian with what the executables and the healthchecks need
FROM debian:bookworm-slim
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends ca-certificates tzdata libssl3 curl jq \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --create-home --home-dir /app vacancy
WORKDIR /app
COPY --from=build --chown=vacancy:vacancy /staging /app
COPY --chown=vacancy:vacancy scripts/seed-demo.sh /app/seed-demo.sh
ENV PATH=/app:$PATH \
    VACANCY_HOST=0.0.0.0 \
    VACANCY_WEB_ROOT=/app/web \
    VACANCY_LOG_FORMAT=json
USER vacancy
EXPOSE 8080 8443 8081 8082 8083
CMD ["vacancy-router"]
