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
# ONLY=capture runs the capture sections alone (01-03 and the profile, about 40 min):
# for a change to the capture path, with every other section kept from its own commit.
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
# Past the knee to saturation (Havainto no longer keeps up): the CPU ratio there.
run 02b-capture-saturation $PY -m bench.capture_load --rates 250 300 --rate-limit off --variants floor havainto
run 03-capture-digests $PY -m bench.capture_load --rates 20 --rate-limit on --digests --variants floor havainto
if [[ "${ONLY:-}" != "capture" ]]; then
  run 04-digests $PY -m bench.digests_scale --rows 1000000 10000000 --backends sqlite postgresql
  for backend in sqlite postgresql; do
    for rows in 1000000 10000000; do
      url=$($PY -c "from bench.common import dataset_url; print(dataset_url('$backend', $rows, 1))")
      run "05-report-$backend-$rows" $PY -m bench.report_length --url "$url" --region helsinki --period 2026
    done
  done
  run 06-export $PY -m bench.export_scale --rows 1000000 10000000 --backends sqlite postgresql --floor-up-to 1000000
  run 07-shared-budget $PY -m bench.shared_budget --private 60 --to-group 10
  run 08-webhook-kill $PY -m bench.webhook_pair --rate 20 --duration 60
  run 09-webhook-both $PY -m bench.webhook_pair --rate 20 --duration 60 --no-kill
  run 10-webhook-per-instance $PY -m bench.webhook_pair --rate 20 --duration 60 --no-kill --budget per-instance
  run 11-summary-length-fi $PY -m bench.summary_length --rows 100000
  run 12-summary-length-sv $PY -m bench.summary_length --rows 100000 --lang sv --region pohjanmaa
  run 13-report-length-month $PY -m bench.report_length --rows 100000 --region helsinki --period 2026-11
  run 14-report-length-half $PY -m bench.report_length --rows 100000 --region helsinki --period 2026-H2
  run 15-report-length-sv $PY -m bench.report_length --rows 100000 --region pohjanmaa --period 2026-H2
  run 16-report-length-team $PY -m bench.report_length --rows 100000 --team helsinki-01 --period 2026-11
  run 17-identifier-cost $PY -m bench.identifier_cost --baseline c6e42d6 --rounds 100
fi
# Where the time per update goes (py-spy on the bot through the measured window; the
# sampling slows the bot, so this run's latencies are not the ones reported above).
run 18-profile env HAVAINTO_BENCH_PROFILE="$OUT/profile" $PY -m bench.capture_load --rates 20 --rate-limit on --variants havainto
if [[ "${WITH_STOCK:-}" == "1" ]]; then
  # The tuned modules against the stock paths they replace (issue 10's decisions).
  run 19-stock-peak $PY -m bench.capture_load --rates 20 --rate-limit on --variants floor floor-httpx havainto stock-db stock-http
  run 20-stock-knee $PY -m bench.capture_load --rates 100 --rate-limit off --variants floor havainto stock-db
fi
echo "run_all: all done at commit $COMMIT"
