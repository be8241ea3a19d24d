# syntax=docker/dockerfile:1.7
# One image for every gpu-telemetry service. Pick the service with the command:
#   docker run gpu-telemetry queue        (or gateway, streamer, collector, simulator, migrate)
ARG NODE_VERSION=20.20.2

FROM node:${NODE_VERSION}-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
COPY apps/gateway/package.json apps/gateway/
COPY apps/queue/package.json apps/queue/
COPY apps/streamer/package.json apps/streamer/
COPY apps/collector/package.json apps/collector/
COPY apps/pipeline-e2e/package.json apps/pipeline-e2e/
COPY libs/config/package.json libs/config/
COPY libs/db/package.json libs/db/
COPY libs/model/package.json libs/model/
COPY libs/service-kit/package.json libs/service-kit/
COPY libs/queue-client/package.json libs/queue-client/
RUN npm ci --no-audit --no-fund
COPY tsconfig.base.json tsconfig.json ./
COPY apps apps
COPY libs libs
RUN npx tsc -b apps/gateway/tsconfig.app.json apps/queue/tsconfig.app.json apps/streamer/tsconfig.app.json apps/collector/tsconfig.app.json

# Production dependencies only, for the four services and their libs.
FROM node:${NODE_VERSION}-bookworm-slim AS deps
WORKDIR /app
COPY --from=build /src/package.json /src/package-lock.json ./
COPY --from=build /src/apps/gateway/package.json apps/gateway/
COPY --from=build /src/apps/queue/package.json apps/queue/
COPY --from=build /src/apps/streamer/package.json apps/streamer/
COPY --from=build /src/apps/collector/package.json apps/collector/
COPY --from=build /src/apps/pipeline-e2e/package.json apps/pipeline-e2e/
COPY --from=build /src/libs/config/package.json libs/config/
COPY --from=build /src/libs/db/package.json libs/db/
COPY --from=build /src/libs/model/package.json libs/model/
COPY --from=build /src/libs/service-kit/package.json libs/service-kit/
COPY --from=build /src/libs/queue-client/package.json libs/queue-client/
RUN npm ci --omit=dev --no-audit --no-fund --ignore-scripts

FROM node:${NODE_VERSION}-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=deps /app/node_modules node_modules
COPY --from=deps /app/package.json ./
# Workspace links in node_modules point at these folders: built output and manifests only.
COPY --from=build /src/apps/gateway/dist apps/gateway/dist
COPY --from=build /src/apps/gateway/package.json apps/gateway/
COPY --from=build /src/apps/queue/dist apps/queue/dist
COPY --from=build /src/apps/queue/package.json apps/queue/
COPY --from=build /src/apps/streamer/dist apps/streamer/dist
COPY --from=build /src/apps/streamer/package.json apps/streamer/
COPY --from=build /src/apps/collector/dist apps/collector/dist
COPY --from=build /src/apps/collector/package.json apps/collector/
COPY --from=build /src/libs/config/dist libs/config/dist
COPY --from=build /src/libs/config/package.json libs/config/
COPY --from=build /src/libs/db/dist libs/db/dist
COPY --from=build /src/libs/db/package.json libs/db/
COPY --from=build /src/libs/model/dist libs/model/dist
COPY --from=build /src/libs/model/package.json libs/model/
COPY --from=build /src/libs/service-kit/dist libs/service-kit/dist
COPY --from=build /src/libs/service-kit/package.json libs/service-kit/
COPY --from=build /src/libs/queue-client/dist libs/queue-client/dist
COPY --from=build /src/libs/queue-client/package.json libs/queue-client/
COPY migrations migrations
COPY deploy/docker/entrypoint.sh /usr/local/bin/gpu-telemetry
# Runs as the unprivileged `node` user; node is PID 1 (exec in the entrypoint), so SIGTERM reaches it.
USER node
EXPOSE 8080 8081 8082 8083 9400
ENTRYPOINT ["/usr/local/bin/gpu-telemetry"]
CMD ["gateway"]
