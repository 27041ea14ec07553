#!/usr/bin/env bash
# check_style.sh: two rules a reader relies on, checked in CI (scripts/test.sh):
#  - no function longer than 60 lines outside tests/ and the command-line
#    definitions of app/main.cpp (a function here is a definition that starts at
#    column 0 and ends at the next "}" at column 0);
#  - nothing in the repository points outside it (at the developers' folder beside it;
#    its name is in the pattern below).
# Usage: bash scripts/check_style.sh [--list N]   (--list prints the N longest functions)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
limit=60
lengths=$(git ls-files '*.cpp' '*.h' ':!tests/' ':!app/main.cpp' | xargs awk '
  FNR == 1 { inside = 0; pending = 0 }
  # A head at column 0 (possibly over several lines) whose last line opens the body.
  !inside && /^[A-Za-z]/ && /\(/ && !/^(namespace|struct|class|enum|union|extern|using|typedef)/ { pending = FNR; head = $0 }
  !inside && pending && /;[[:space:]]*$/ { pending = 0 }
  !inside && pending && /\{[[:space:]]*$/ { inside = 1; start = pending; pending = 0; next }
  inside && /^\}/ { inside = 0; n = FNR - start + 1; sub(/\(.*/, "", head); print n "\t" FILENAME ":" start "\t" head }
' | sort -rn)
if [ "${1:-}" = --list ]; then echo "$lengths" | head -n "${2:-10}"; exit 0; fi
fail=0
while IFS=$'\t' read -r n where head; do
  [ -n "$n" ] || continue
  if [ "$n" -gt "$limit" ]; then echo "$where: ${head##* } is $n lines (at most $limit)"; fail=1; fi
done <<< "$lengths"
pattern='\.\./shared|shared/(reference|seed)'
if git grep -nE "$pattern" -- ':!scripts/check_style.sh' ':!.ci'; then echo "the lines above point outside the repository"; fail=1; fi
echo "check_style: $(echo "$lengths" | grep -c .) functions measured"
exit $fail
