#!/usr/bin/env bash
# Copy the npm-installed browser libraries into app/static/vendor (committed; the app never uses a CDN).
#   cd web && npm ci && ./vendor.sh
set -euo pipefail
cd "$(dirname "$0")"
target=../app/static/vendor/leaflet
rm -rf "$target"
mkdir -p "$target/images"
cp node_modules/leaflet/dist/leaflet.js node_modules/leaflet/dist/leaflet.css node_modules/leaflet/LICENSE "$target/"
cp node_modules/leaflet/dist/images/*.png "$target/images/"
node -e 'console.log(require("./node_modules/leaflet/package.json").version)' > "$target/VERSION"
