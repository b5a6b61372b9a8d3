#!/usr/bin/env bash
# Wall time of `make test` from a fresh clone, environment install included:
#   bash benchmarks/fresh_clone_make_test.sh
set -euo pipefail
src="$(cd "$(dirname "$0")/.." && pwd)"
dir="$(mktemp -d)"
git clone -q "$src" "$dir/course"
cd "$dir/course"
start=$(date +%s)
make test > "$dir/make_test.log" 2>&1 || { tail -30 "$dir/make_test.log"; exit 1; }
end=$(date +%s)
grep -E "passed|failed" "$dir/make_test.log" | sed 's/^/  /'
echo "make test from a fresh clone (install included): $((end - start)) s"
rm -rf "$dir"
