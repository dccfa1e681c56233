# One image per binary: docker build --build-arg BINARY=router -t kubeplex/router .
# BINARY is one of manager, router, collector, kubeplex. The images built on machines
# without a Docker engine (hack/image.sh) have the same layout: /<binary> as entrypoint.
FROM golang:1.26 AS build
ARG BINARY=manager
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY api/ api/
COPY cmd/ cmd/
COPY collector/ collector/
COPY controllers/ controllers/
COPY internal/ internal/
COPY router/ router/
RUN CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o /out/${BINARY} ./cmd/${BINARY}

FROM gcr.io/distroless/static:nonroot
ARG BINARY=manager
COPY --from=build /out/${BINARY} /${BINARY}
USER 65532:65532
# Exec-form ENTRYPOINT does not expand ARGs, so the binary is also copied to a fixed path.
COPY --from=build /out/${BINARY} /entrypoint
ENTRYPOINT ["/entrypoint"]
