#!/usr/bin/env bash
# Builds the real flannel binaries the kernel tests run next to ours, from their published Go
# modules through the Go module proxy, into a cache folder outside git, once per machine and
# version. Nothing of flannel's source or binaries enters the repository.
#
#   tests/realbin/build.sh            # build what is missing, print the cache folder
#   FLANNEL_BIN_CACHE=/some/dir ...   # another cache folder (default ~/.cache/kubeasz-network)
#
# Layout: $CACHE/flannel-<version>/bin/flannel      flanneld (github.com/flannel-io/flannel)
#         $CACHE/cni-<version>/bin/flannel          the flannel CNI plugin
#         $CACHE/cni-<version>/bin/<Debian plugin>  links to /usr/lib/cni/* (one CNI_PATH)
#
# Two modules the proxy refuses (403 "not available") are worked around, see tests/realbin/README.md:
# - flanneld v0.28.9 imports the Tencent Cloud SDK for its tencentvpc backend: it is built from a
#   module of our own that replaces those two SDK modules with tests/realbin/tencentstub/.
# - github.com/flannel-io/cni-plugin (kubeasz 3.7: v1.9.1-flannel3) is refused at every version:
#   the plugin is built from the nearest version served, its upstream origin
#   github.com/containernetworking/plugins/plugins/meta/flannel at v0.9.1.
set -euo pipefail

FLANNEL_VERSION=${FLANNEL_VERSION:-v0.28.9}
CNI_MODULE=${CNI_MODULE:-github.com/containernetworking/plugins/plugins/meta/flannel}
CNI_VERSION=${CNI_VERSION:-v0.9.1}
CNI_DEBIAN=${CNI_DEBIAN:-/usr/lib/cni}
CACHE=${FLANNEL_BIN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubeasz-network}
HERE=$(cd "$(dirname "$0")" && pwd)
GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}

if [ ! -x "$GO" ] && ! command -v "$GO" >/dev/null; then
	echo "build.sh: Go not found (install Go >= 1.25 as /usr/local/go/bin/go, or set GO=)" >&2
	exit 1
fi
mkdir -p "$CACHE"
# module and build caches live in the same folder: a fresh machine downloads and compiles once
export GOMODCACHE=$CACHE/gomod GOCACHE=$CACHE/gobuild GOFLAGS=-buildvcs=false
export GOTOOLCHAIN=local

exec 9>"$CACHE/.build.lock"   # two test workers may ask at the same moment
flock 9

flanneld=$CACHE/flannel-$FLANNEL_VERSION/bin/flannel
if [ ! -x "$flanneld" ]; then
	start=$(date +%s)
	work=$(mktemp -d "$CACHE/.flanneld.XXXXXX")
	trap 'rm -rf "$work"' EXIT
	mkdir -p "$work/stub"
	cp -r "$HERE/tencentstub/common" "$HERE/tencentstub/vpc" "$work/stub/"
	sdk=github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud
	cat >"$work/go.mod" <<GOMOD
module kubeasz.network/flanneld-build

go 1.25

replace $sdk/common => ./stub/common

replace $sdk/vpc => ./stub/vpc
GOMOD
	echo "build.sh: building flanneld $FLANNEL_VERSION (github.com/flannel-io/flannel)" >&2
	# flanneld's udp backend is cgo (flannel builds it with CGO_ENABLED=1 on amd64): gcc is needed
	(cd "$work" && export CGO_ENABLED=1 && "$GO" get "github.com/flannel-io/flannel@$FLANNEL_VERSION" \
		&& "$GO" build -mod=mod -trimpath -o "$work/flannel" \
			-ldflags "-s -w -X github.com/flannel-io/flannel/pkg/version.Version=$FLANNEL_VERSION" \
			github.com/flannel-io/flannel)
	mkdir -p "$(dirname "$flanneld")"
	mv "$work/flannel" "$flanneld"
	rm -rf "$work"
	trap - EXIT
	echo "build.sh: flanneld built in $(( $(date +%s) - start )) s" >&2
fi

cnidir=$CACHE/cni-$CNI_VERSION/bin
if [ ! -x "$cnidir/flannel" ]; then
	start=$(date +%s)
	work=$(mktemp -d "$CACHE/.cni.XXXXXX")
	echo "build.sh: building the flannel CNI plugin ($CNI_MODULE@$CNI_VERSION)" >&2
	CGO_ENABLED=0 GOBIN=$work "$GO" install -trimpath -ldflags "-s -w" "$CNI_MODULE@$CNI_VERSION"
	mkdir -p "$cnidir"
	mv "$work/flannel" "$cnidir/flannel"
	rm -rf "$work"
	echo "build.sh: CNI plugin built in $(( $(date +%s) - start )) s" >&2
fi
# the plugin delegates to bridge and host-local, found in the same CNI_PATH
for plugin in "$CNI_DEBIAN"/*; do
	[ -x "$plugin" ] && ln -sfn "$plugin" "$cnidir/$(basename "$plugin")"
done
echo "$CACHE"
