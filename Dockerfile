# syntax=docker/dockerfile:1
# herald gateway. Debian-based (glibc) because uWebSockets.js ships glibc binaries only.

FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
# uWebSockets.js ships binaries for every OS, CPU and Node ABI (~90 MB) plus a pure-JS shim herald
# never loads (it falls back to its own Node transport): keep only this platform's binary.
RUN npm run build \
 && chmod +x dist/cli.js \
 && npm prune --omit=dev --no-audit --no-fund \
 && keep="uws_$(node -p 'process.platform + "_" + process.arch + "_" + process.versions.modules').node" \
 && find node_modules/uWebSockets.js/binaries -type f ! -name "$keep" -delete \
 && rm -rf node_modules/uWebSockets.js/dist node_modules/uWebSockets.js/docs

FROM node:20-bookworm-slim
# tini as PID 1 forwards SIGTERM to node and reaps zombies; herald drains on SIGTERM.
# `herald` on PATH (package.json "bin"): docker run --rm herald:local herald check, docker exec <container> herald token.
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/* \
 && ln -s /app/dist/cli.js /usr/local/bin/herald
ENV NODE_ENV=production \
    PORT=3000
WORKDIR /app
# Owned by root and read-only for the runtime user.
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
USER node
EXPOSE 3000
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 3000) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/tini", "--"]
# As `npm start`: a young generation of at most 2 x 8 MB (V8 grows it to 2 x 16 MB by default while
# connections open), 16 MB less per replica; no throughput change measured (BENCHMARKS.md).
CMD ["node", "--max-semi-space-size=8", "dist/main.js"]
