#!/usr/bin/env bash
# Demo sessions for `make run`: the four first-aid courses at Location A and B over the
# next 30 days, 12 seats each, at 09:00 and 13:30 on the venue's clock (VACANCY_TIME_ZONE,
# Europe/London under `make run`). Does nothing if sessions already exist in that window.
set -euo pipefail
base=${1:-http://127.0.0.1:8081}
key=${2:-vacancy-dev-key}
zone=${VACANCY_TIME_ZONE:-UTC}
auth="Authorization: Bearer $key"
status=$(curl -s -o /tmp/vacancy-seed.$$ -w '%{http_code}' -H "$auth" "$base/api/v1/sessions?limit=1") || status=000
existing=$(jq -r .count /tmp/vacancy-seed.$$ 2>/dev/null || true)
rm -f /tmp/vacancy-seed.$$
case "$status" in
  200) ;;
  401) echo "==> demo data: the bookings service refuses the demo key; set VACANCY_DEMO_KEY to one of the keys in VACANCY_API_KEYS"; exit 1 ;;
  *) echo "==> demo data: the bookings service answered $status to GET /api/v1/sessions; see its log lines above"; exit 1 ;;
esac
if [ "$existing" != "0" ]; then
  echo "==> demo data: sessions already present, leaving them"
  exit 0
fi
courses=("Emergency First Aid at Work" "First Aid at Work" "Paediatric First Aid" "CPR and AED")
created=0
for day in $(seq 1 30); do
  date=$(TZ="$zone" date -d "+$day day" +%Y-%m-%d)
  dow=$(date -u -d "$date" +%u)
  [ "$dow" -ge 6 ] && continue   # weekdays only
  for loc in 0 1; do
    location=$([ "$loc" = 0 ] && echo "Location A" || echo "Location B")
    # Two courses a day per location, rotating through the four.
    for slot in 0 1; do
      course=${courses[$(((day + loc * 2 + slot) % 4))]}
      if [ "$slot" = 0 ]; then start="09:00"; end="12:30"; else start="13:30"; end="17:00"; fi
      # The venue's 09:00 as an instant (its offset that day, summer time or not).
      starts=$(date -u -d "TZ=\"$zone\" $date $start" +%Y-%m-%dT%H:%M:%SZ)
      ends=$(date -u -d "TZ=\"$zone\" $date $end" +%Y-%m-%dT%H:%M:%SZ)
      body=$(jq -nc --arg c "$course" --arg l "$location" --arg s "$starts" --arg e "$ends" --arg z "$zone" \
        '{course_type: $c, location: $l, starts_at: $s, ends_at: $e, time_zone: $z, capacity: 12}')
      curl -fs -o /dev/null -H "$auth" -H 'Content-Type: application/json' -d "$body" "$base/api/v1/sessions"
      created=$((created + 1))
    done
  done
  printf '\r==> demo data: %d sessions' "$created"
done
echo
