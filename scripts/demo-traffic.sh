#!/usr/bin/env bash
# `make demo-traffic`: books, holds and cancels at random against a running `make run`
# stack, so the calendar page moves. Ctrl-C stops it.
set -euo pipefail
base=${VACANCY_BOOKINGS_URL:-http://127.0.0.1:8081}
. "$(dirname "$0")/demo-key.sh"
# The key `make run` chose (it writes it to .data/run/demo-key), unless VACANCY_DEMO_KEY says otherwise.
keyfile=${VACANCY_DATA_DIR:-$(dirname "$0")/../.data}/run/demo-key
if [ -z "${VACANCY_DEMO_KEY:-}" ] && [ -r "$keyfile" ]; then key=$(cat "$keyfile"); else key=$(demo_key); fi
pause=${DEMO_TRAFFIC_PAUSE:-0.7}
auth="Authorization: Bearer $key"
curl -fs "$base/healthz" >/dev/null || { echo "nothing answers on $base: start the stack with \`make run\` first"; exit 1; }

from=$(date -u +%Y-%m-%d)
to=$(date -u -d '+14 day' +%Y-%m-%d)
mapfile -t sessions < <(curl -fs -H "$auth" "$base/api/v1/sessions?from=$from&to=$to&status=scheduled&limit=500" | jq -r '.sessions[].id')
[ ${#sessions[@]} -gt 0 ] || { echo "no sessions in the next 14 days"; exit 1; }
echo "==> demo traffic on ${#sessions[@]} sessions of the next 14 days (Ctrl-C stops)"
bookings=()
while true; do
  if [ ${#bookings[@]} -gt 0 ] && [ $((RANDOM % 10)) -lt 3 ]; then
    index=$((RANDOM % ${#bookings[@]}))
    id=${bookings[$index]}
    bookings=("${bookings[@]:0:$index}" "${bookings[@]:$((index + 1))}")
    status=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "$auth" "$base/api/v1/bookings/$id/cancel")
    echo "cancel  ${id: -8}            → $status"
  else
    session=${sessions[$((RANDOM % ${#sessions[@]}))]}
    seats=$((RANDOM % 3 + 1))
    hold=""
    [ $((RANDOM % 10)) -lt 3 ] && hold=', "hold_seconds": 120'
    body="{\"session_id\": \"$session\", \"customer_id\": \"demo-$((RANDOM % 50))\", \"adult_count\": $seats, \"child_count\": 0$hold}"
    answer=$(curl -s -w '\n%{http_code}' -H "$auth" -H 'Content-Type: application/json' \
      -H "Idempotency-Key: demo-$(date +%s%N)-$RANDOM" -d "$body" "$base/api/v1/bookings")
    status=${answer##*$'\n'}
    kind=$([ -n "$hold" ] && echo hold || echo book)
    if [ "$status" = 201 ]; then
      bookings+=("$(echo "${answer%$'\n'*}" | jq -r .id)")
      echo "$kind    $seats seat(s) on ${session: -8} → 201"
    else
      echo "$kind    $seats seat(s) on ${session: -8} → $status ($(echo "${answer%$'\n'*}" | jq -r '.title // empty'))"
    fi
  fi
  sleep "$pause"
done
