#!/usr/bin/env bash
# Sourced: demo_key prints the API key the demo loader, `make demo-traffic` and the page's
# demo mode use: VACANCY_DEMO_KEY if set, else the first key in VACANCY_API_KEYS, else the
# built-in development key (the bookings service's default).
demo_key() {
  if [ -n "${VACANCY_DEMO_KEY:-}" ]; then
    printf '%s\n' "$VACANCY_DEMO_KEY"
  elif [ -n "${VACANCY_API_KEYS:-}" ]; then
    local first=${VACANCY_API_KEYS%%,*}
    first=${first#*:}
    printf '%s\n' "$first" | sed 's/^[[:space:]]*//; s/[[:space:]]*$//'
  else
    echo vacancy-dev-key
  fi
}
