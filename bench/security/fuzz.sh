#!/usr/bin/env bash
# Long schemathesis run against a running platform (default: http://127.0.0.1:8000).
#   bench/security/fuzz.sh [BASE_URL] [API_KEY]
# Every operation, every phase (examples, coverage, fuzzing, stateful), 200 examples each,
# all schemathesis checks except the ones our OGC API deliberately differs on (see README).
set -euo pipefail
BASE="${1:-http://127.0.0.1:8000}"
KEY="${2:-${GIS_FUZZ_KEY:-}}"
HERE="$(cd "$(dirname "$0")" && pwd)"
ST="${SCHEMATHESIS:-$(dirname "$(readlink -f "$0")")/../../.venv/bin/schemathesis}"
OUT="${FUZZ_OUT:-$HERE/out}"
mkdir -p "$OUT"
args=(run "$BASE/openapi.json" --max-examples "${FUZZ_MAX_EXAMPLES:-200}"
      --phases examples,coverage,fuzzing,stateful --workers "${FUZZ_WORKERS:-4}"
      --checks all --exclude-checks "${FUZZ_EXCLUDE_CHECKS:-status_code_conformance,unsupported_method,positive_data_acceptance,missing_required_header,ignored_auth}"
      --request-timeout 60 --continue-on-failure --no-color
      --report junit,har --report-dir "$OUT")
[ -n "$KEY" ] && args+=(--header "Authorization: Bearer $KEY")
# Uploads and deletes change the catalog: only against a throw-away instance.
[ "${FUZZ_DESTRUCTIVE:-0}" = "1" ] || args+=(--exclude-method DELETE --exclude-path-regex '^/layers/upload$')
exec "$ST" "${args[@]}"
