# syntax=docker/dockerfile:1
# Builds static mcp-authz and demo MCP server binaries and runs them as a
# numeric non-root user on a minimal base.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/mcp-authz ./cmd/mcp-authz \
 && CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/demo-mcp-server ./examples/demo-mcp-server \
 && mkdir -p /out/data && chown 65532:65532 /out/data && chmod 0700 /out/data

# The demo MCP server, for docker-compose.yml.
FROM gcr.io/distroless/static-debian12:nonroot AS demo-mcp-server
COPY --from=build /out/demo-mcp-server /demo-mcp-server
USER 65532:65532
EXPOSE 8000
ENTRYPOINT ["/demo-mcp-server", "--addr", ":8000"]

# mcp-authz itself (the default target).
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/mcp-authz /mcp-authz
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
ENV MCP_AUTHZ_DATA_DIR=/data \
    MCP_AUTHZ_HTTP_ADDR=:9000 \
    MCP_AUTHZ_GRPC_ADDR=:9001
VOLUME ["/data"]
EXPOSE 9000 9001
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["/mcp-authz", "health"]
ENTRYPOINT ["/mcp-authz"]
CMD ["serve"]
