#!/usr/bin/env bash
# Copy the npm-installed browser libraries into app/static/vendor (committed; the app never uses a CDN).
#   cd web && npm ci && ./vendor.sh
# leaflet: the planner map (/map); swagger-ui-dist and redoc: the API docs at /docs and /redoc (app/api/docs_pages.py).
set -euo pipefail
cd "$(dirname "$0")"
vendor=../app/static/vendor

version() {  # the installed version of npm package $1, written to $2/VERSION
  node -e 'console.log(require("./node_modules/" + process.argv[1] + "/package.json").version)' "$1" > "$2/VERSION"
}

target=$vendor/leaflet
rm -rf "$target"
mkdir -p "$target/images"
cp node_modules/leaflet/dist/leaflet.js node_modules/leaflet/dist/leaflet.css node_modules/leaflet/LICENSE "$target/"
cp node_modules/leaflet/dist/images/*.png "$target/images/"
version leaflet "$target"

target=$vendor/swagger-ui
rm -rf "$target"
mkdir -p "$target"
cp node_modules/swagger-ui-dist/{swagger-ui-bundle.js,swagger-ui-bundle.js.LICENSE.txt,swagger-ui.css,LICENSE,NOTICE} \
  "$target/"
version swagger-ui-dist "$target"

target=$vendor/redoc
rm -rf "$target"
mkdir -p "$target"
cp node_modules/redoc/bundles/{redoc.standalone.js,redoc.standalone.js.LICENSE.txt} node_modules/redoc/LICENSE "$target/"
version redoc "$target"
