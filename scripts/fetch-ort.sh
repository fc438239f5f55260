#!/usr/bin/env bash
# Fetches ONNX Runtime's shared library from the npm registry (the only place
# this project downloads it from), checks its sha256 against the pinned value
# and leaves it at $1. `npm pack` only downloads the tarball: `npm install`
# would run onnxruntime-node's postinstall, which fetches CUDA binaries.
set -euo pipefail
dest=$1
version=$2
want=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "fetching onnxruntime-node@$version from the npm registry (about 110 MB, once)" >&2
(cd "$tmp" && npm pack --silent "onnxruntime-node@$version" >/dev/null)
tar -xzf "$tmp"/onnxruntime-node-"$version".tgz -C "$tmp" package/bin/napi-v6/linux/x64/libonnxruntime.so.1
got=$(sha256sum "$tmp"/package/bin/napi-v6/linux/x64/libonnxruntime.so.1 | cut -d' ' -f1)
if [ "$got" != "$want" ]; then
  echo "libonnxruntime.so.1 from onnxruntime-node@$version has sha256 $got, want $want: refusing it" >&2
  exit 1
fi
mkdir -p "$(dirname "$dest")"
mv "$tmp"/package/bin/napi-v6/linux/x64/libonnxruntime.so.1 "$dest.part"
mv "$dest.part" "$dest"
echo "ONNX Runtime $version at $dest" >&2
