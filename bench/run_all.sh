#!/usr/bin/env bash
# Every benchmark that bench/RESULTS.md reports, one after the other, at one commit.
#
#   bash bench/run_all.sh [outdir]
#
# Each command's Markdown goes to <outdir>/NN-name.md (default bench/data/run-<commit>/,
# git-ignored) with the commit, the time and the load average at its start; RESULTS.md is
# assembled from those files. Run it on a quiet machine: about 1 h 45 min on 2 cores once
# the data sets exist (they are made on first use: add ~30 min for the 10M-row ones).
# The working tree must be clean, so the figures belong to the commit printed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
if [[ -n "$(git status --porcelain --untracked-files=no)" ]]; then
  echo "run_all: the working tree has changes; commit them first" >&2
  exit 1
fi
COMMIT=$(git rev-parse --short=10 HEAD)
OUT=${1:-bench/data/run-$COMMIT}
mkdir -p "$OUT"
echo "run_all: commit $COMMIT, output in $OUT"

run() {
  local name=$1
  shift
  local file="$OUT/$name.md"
  {
    echo "<!-- commit $COMMIT; started $(date -u '+%Y-%m-%d %H:%M UTC'); load $(cut -d' ' -f1-3 /proc/loadavg) -->"
    echo "<!-- command: $* -->"
  } >"$file"
  echo "run_all: $name: $*"
  local began=$SECONDS
  if "$@" >>"$file" 2>"$OUT/$name.err"; then
    echo "run_all: $name done in $((SECONDS - began)) s"
  else
    echo "run_all: $name FAILED (exit $?), see $OUT/$name.err" >&2
  fi
}

run 01-capture-peak $PY -m bench.capture_load --rates 20 --rate-limit on --variants floor bare havainto
run 02-capture-knee $PY -m bench.capture_load --rates 60 100 150 200 --rate-limit off --variants floor havainto
run 03-capture-digests $PY -m bench.capture_load --rates 20 --rate-limit on --digests --variants floor havainto
run 04-digests $PY -m bench.digests_scale --rows 1000000 10000000 --backends sqlite postgresql
for backend in sqlite postgresql; do
  for rows in 1000000 10000000; do
    url=$($PY -c "from bench.common import dataset_url; print(dataset_url('$backend', $rows, 1))")
    run "05-report-$backend-$rows" $PY -m bench.report_length --url "$url" --region helsinki --period 2026
  done
done
run 06-export $PY -m bench.export_scale --rows 1000000 10000000 --backends sqlite postgresql
run 07-shared-budget $PY -m bench.shared_budget --private 60 --to-group 10
run 08-webhook-kill $PY -m bench.webhook_pair --rate 20 --duration 60
run 09-webhook-both $PY -m bench.webhook_pair --rate 20 --duration 60 --no-kill
run 10-webhook-per-instance $PY -m bench.webhook_pair --rate 20 --duration 60 --no-kill --budget per-instance
echo "run_all: all done at commit $COMMIT"
