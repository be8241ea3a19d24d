# syntax=docker/dockerfile:1.7
# One image for every gpu-telemetry service. Pick the service with the command:
#   docker run gpu-telemetry queue        (or gateway, streamer, collector, simulator, migrate)
# The build stage runs deploy/docker/assemble.mjs, the script the boot test runs too
# (deploy/tests/image-boot.test.ts), and the final stage is its output and nothing else.
# NODE_VERSION is also pinned in deploy/docker/node/package.json: the release that test runs the
# tree under. A test keeps the two equal.
ARG NODE_VERSION=24.22.3

FROM node:${NODE_VERSION}-bookworm-slim AS build
WORKDIR /src
# Manifests first, so the dependency layer is rebuilt only when they change. npm ci wants every
# workspace's manifest; the build only runs tsc, so no install scripts.
COPY package.json package-lock.json ./
COPY apps/gateway/package.json apps/gateway/
COPY apps/queue/package.json apps/queue/
COPY apps/streamer/package.json apps/streamer/
COPY apps/collector/package.json apps/collector/
COPY apps/pipeline-e2e/package.json apps/pipeline-e2e/
COPY libs/config/package.json libs/config/
COPY libs/db/package.json libs/db/
COPY libs/dcgm-simulator/package.json libs/dcgm-simulator/
COPY libs/harness/package.json libs/harness/
COPY libs/model/package.json libs/model/
COPY libs/service-kit/package.json libs/service-kit/
COPY libs/queue-client/package.json libs/queue-client/
COPY libs/promql/package.json libs/promql/
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.base.json tsconfig.json ./
COPY apps apps
COPY libs libs
COPY migrations migrations
COPY deploy/docker deploy/docker
# Built services and libs, production dependencies only, migrations, the entrypoint in /out/bin.
RUN node deploy/docker/assemble.mjs /out

FROM node:${NODE_VERSION}-bookworm-slim
ENV NODE_ENV=production
COPY --from=build /out /app
WORKDIR /app
# `docker exec <container> gpu-telemetry migrate status` works too.
ENV PATH=/app/bin:$PATH
# Runs as the unprivileged `node` user; node is PID 1 (exec in the entrypoint), so SIGTERM reaches it.
USER node
EXPOSE 8080 8081 8082 8083 9400
ENTRYPOINT ["/app/bin/gpu-telemetry"]
CMD ["gateway"]
