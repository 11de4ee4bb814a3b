#!/usr/bin/env bash
# make dist: static gridha binaries for linux amd64 and arm64 and the .deb
# and .rpm of each, in dist/. Version, commit and date come from the
# Makefile (VERSION, COMMIT, DATE); packages are built by nfpm, a Go tool
# dependency of this module (go.mod: tool github.com/goreleaser/nfpm/...).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${VERSION:?}" "${COMMIT:?}" "${DATE:=}"
ARCHES=${ARCHES:-amd64 arm64}
ldflags="-s -w -X main.version=$VERSION -X main.commit=$COMMIT -X main.date=$DATE"

# Package versions must start with a digit (dpkg) and hold no '-' (rpm):
# a tag v1.2.3 gives 1.2.3, an untagged commit 0.0.0~git<date>.<commit>,
# which sorts before any release.
# (git describe after a tag: v1.2.3-4-gabcdef1 gives 1.2.3+4.gabcdef1,
# after 1.2.3.)
if [[ "$VERSION" =~ ^v?[0-9]+\.[0-9]+ ]]; then
  PKG_VERSION=${VERSION#v}
  PKG_VERSION=${PKG_VERSION/-dirty/+dirty}
  PKG_VERSION=${PKG_VERSION/-/+}
  PKG_VERSION=${PKG_VERSION//-/.}
else
  day=$(echo "${DATE:-0000-00-00}" | tr -d -- '-' | cut -c1-8)
  PKG_VERSION="0.0.0~git$day.$COMMIT"
  case "$VERSION" in *-dirty) PKG_VERSION+=+dirty ;; esac
fi

rm -rf dist
mkdir -p dist/root
for arch in $ARCHES; do
  CGO_ENABLED=0 GOOS=linux GOARCH=$arch go build -trimpath -ldflags "$ldflags" -o "dist/gridha-linux-$arch" ./cmd/gridha
done

# The man pages, completions and daemon files come from this machine's
# gridha (they are the same for every architecture).
native=$(go env GOARCH)
if [ -x "dist/gridha-linux-$native" ]; then
  gen="dist/gridha-linux-$native"
else
  gen=dist/gridha-gen
  CGO_ENABLED=0 go build -ldflags "$ldflags" -o "$gen" ./cmd/gridha
fi
"$gen" __package-files dist/root
rm -f dist/gridha-gen

mkdir -p dist/root/usr/sbin
for arch in $ARCHES; do
  cp "dist/gridha-linux-$arch" dist/root/usr/sbin/gridha
  for pkg in deb rpm; do
    # nfpm takes Go's architecture names and maps them per packager
    # (arm64: aarch64 in the .rpm).
    PKG_ARCH=$arch PKG_VERSION=$PKG_VERSION \
      go tool nfpm package --config packaging/nfpm.yaml --packager "$pkg" --target dist/ >/dev/null
  done
done
rm -f dist/root/usr/sbin/gridha
(cd dist && sha256sum gridha-linux-* *.deb *.rpm > SHA256SUMS)
ls -l dist | sed 1d
