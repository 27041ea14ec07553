#!/usr/bin/env bash
# check_docs.sh: every code link in docs/*.md, written [`symbol`](../path/file#L123),
# must open the file at the line that defines `symbol` (a function, method, class or
# struct starting at column 0; for `Class::method` the last part is the symbol). And
# every function linked from section N of docs/guide.md must cite it back with
# "guide.md §N" in the ten lines just above its definition.
# Usage: bash scripts/check_docs.sh [--fix]   (--fix rewrites the line numbers after code moved)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
fix=0; [ "${1:-}" = --fix ] && fix=1
fail=0; n=0
for doc in docs/*.md; do
  while IFS=$'\t' read -r sec text link; do
    target=${link%%#*}; anchor=${link#*#}
    sym=${text//\`/}; sym=${sym%()}; sym=${sym##*::}
    file=$(realpath -m "docs/$target")
    n=$((n + 1))
    if [ ! -f "$file" ]; then echo "$doc: $link: no file $target"; fail=1; continue; fi
    line=$(grep -nE "^(class|struct) ${sym}\b|^[A-Za-z].*[^A-Za-z0-9_]([A-Za-z_][A-Za-z0-9_]*::)?${sym}\(" "$file" | head -n 1 | cut -d: -f1)
    if [ -z "$line" ]; then echo "$doc: [$text]($link): no definition of '$sym' in $target"; fail=1; continue; fi
    if [ "$anchor" != "L$line" ]; then
      if [ $fix = 1 ]; then
        esc=$(printf '%s' "[$text]($link)" | sed 's/[][\/.*^$]/\\&/g')
        sed -i "s/$esc/[$(printf '%s' "$text" | sed 's/[\/&]/\\&/g')]($(printf '%s' "$target" | sed 's/[\/&]/\\&/g')#L$line)/g" "$doc"
      else
        echo "$doc: [$text]($link): '$sym' is defined at line $line of $target (run scripts/check_docs.sh --fix)"; fail=1
      fi
    fi
    if [ "$doc" = docs/guide.md ] && [ "$sec" != 0 ]; then
      from=$((line > 10 ? line - 10 : 1))
      if ! sed -n "${from},${line}p" "$file" | grep -q "guide.md §${sec}\b"; then
        echo "$target:$line: '$sym' is linked from guide.md §$sec but does not cite it (add '// guide.md §$sec ...')"; fail=1
      fi
    fi
  done < <(awk '/^## [0-9]+\./ { sec = $2; sub(/\./, "", sec) }
                { s = $0; while (match(s, /\[`[^]`]+`\]\(\.\.\/[^)#]+#[A-Za-z_][A-Za-z0-9_]*\)/)) {
                    m = substr(s, RSTART, RLENGTH); t = m; sub(/\]\(.*/, "", t); sub(/^\[/, "", t)
                    l = m; sub(/^[^(]*\(/, "", l); sub(/\)$/, "", l)
                    print (sec == "" ? 0 : sec) "\t" t "\t" l; s = substr(s, RSTART + RLENGTH) } }' "$doc")
done
echo "check_docs: $n links checked"
exit $fail
