#!/usr/bin/env bash
# check_docs.sh: every link of the form (../path/file#symbol) in docs/*.md must
# point at a file that exists and defines `symbol` (a function, class or struct).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
fail=0; n=0
for doc in docs/*.md; do
  while IFS= read -r link; do
    target=${link%%#*}; sym=${link#*#}
    file=$(realpath -m "docs/$target")
    n=$((n + 1))
    if [ ! -f "$file" ]; then echo "$doc: $link: no file $target"; fail=1; continue; fi
    if ! grep -qE "(class|struct) ${sym}\b|(^|[^A-Za-z0-9_])${sym}\(" "$file"; then
      echo "$doc: $link: no function, class or struct '$sym' in $target"; fail=1
    fi
  done < <(grep -oE '\]\(\.\./[^)#]+#[A-Za-z_][A-Za-z0-9_]*\)' "$doc" | sed -E 's/^\]\(//; s/\)$//')
done
echo "check_docs: $n links checked"
exit $fail
