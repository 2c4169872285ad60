# syntax=docker/dockerfile:1
# graft, CPU image: the API, the one-shot migration step and CPU workers (TensorFlow's native CPU
# kernels through @tensorflow/tfjs-node). GPU workers: Dockerfile.gpu.
#
#   docker build --target api    -t graft-api .          # also runs `scripts/migrate.ts` (compose: migrate)
#   docker build --target worker -t graft-worker-cpu .
#
# Node: the LTS line of .nvmrc and package.json "engines" (README, "Node versions").
# Sources run through tsx (a production dependency of the apps); nothing is compiled ahead.
ARG NODE_IMAGE=node:22-bookworm-slim

# ---- package manifests only -----------------------------------------------------------------
# Copying every package.json out of the full context gives the install layer below a cache key that
# changes only when a manifest or the lockfile does, whatever workspaces exist.
FROM ${NODE_IMAGE} AS manifests
WORKDIR /src
COPY . .
RUN mkdir /manifests \
 && cp package.json package-lock.json /manifests/ \
 && find apps packages -mindepth 2 -maxdepth 2 -name package.json -exec cp --parents {} /manifests/ \;

# ---- production dependencies ----------------------------------------------------------------
# Install scripts are off, then run by name for the one binding this image uses: tfjs-node (CPU)
# downloads libtensorflow; its GPU twin is removed; onnxruntime-node would fetch CUDA libraries.
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
ENV ONNXRUNTIME_NODE_INSTALL=skip
COPY --from=manifests /manifests ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
 && rm -rf node_modules/@tensorflow/tfjs-node-gpu \
 && npm rebuild @tensorflow/tfjs-node \
 && npm cache clean --force

# ---- Prisma client (generated; needs the dev dependency `prisma`) -----------------------------
FROM ${NODE_IMAGE} AS prisma-client
WORKDIR /app
COPY --from=manifests /manifests ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY prisma ./prisma
COPY prisma.config.ts ./
# Prisma's CLI looks for its schema engine binary, which `generate` does not use; any file will do.
RUN PRISMA_SCHEMA_ENGINE_BINARY=/usr/local/bin/node npx prisma generate

# ---- the web dashboard the API serves at / (DASHBOARD_DIR): built with the dev dependencies (vite;
# TypeScript for the client package it bundles), only its static files leave this stage -------------
FROM prisma-client AS dashboard
COPY tsconfig.base.json ./
COPY packages/contracts ./packages/contracts
COPY packages/client ./packages/client
COPY apps/dashboard ./apps/dashboard
RUN node packages/client/scripts/build.mjs --force \
 && node node_modules/vite/bin/vite.js build --config apps/dashboard/vite.config.ts --logLevel warn

# ---- runtime: dependencies, then sources, then the generated client ---------------------------
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    STORAGE_DIR=/data \
    HOST=0.0.0.0 \
    WORKER_METRICS_HOST=0.0.0.0
WORKDIR /app
COPY --from=deps /app ./
COPY . .
COPY --from=prisma-client /app/packages/db/src/generated ./packages/db/src/generated
COPY --from=dashboard /app/apps/dashboard/dist ./apps/dashboard/dist
RUN mkdir -p /data && chown node:node /data
USER node

# ---- the API (and, with another command, the migrate step) ------------------------------------
FROM runtime AS api
EXPOSE 3000
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 3000) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
CMD ["node", "--import", "tsx", "apps/api/src/main.ts"]

# ---- a CPU worker ------------------------------------------------------------------------------
FROM runtime AS worker
ENV GRAFT_TF_BACKEND=node
EXPOSE 9464
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.WORKER_METRICS_PORT || 9464) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["node", "--import", "tsx", "apps/worker/src/main.ts"]
