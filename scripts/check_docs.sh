#!/usr/bin/env bash
# check_docs.sh: every link (../path/file#symbol) in docs/*.md must point at a file
# that defines `symbol` (a function, method, class or struct, at the start of a
# line); and every function linked from section N of docs/guide.md must cite it
# back with "guide.md §N" in the comment lines just above its definition.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
fail=0; n=0
for doc in docs/*.md; do
  while read -r sec link; do
    target=${link%%#*}; sym=${link#*#}
    file=$(realpath -m "docs/$target")
    n=$((n + 1))
    if [ ! -f "$file" ]; then echo "$doc: $link: no file $target"; fail=1; continue; fi
    line=$(grep -nE "^(class|struct) ${sym}\b|^[A-Za-z].*[^A-Za-z0-9_]([A-Za-z_][A-Za-z0-9_]*::)?${sym}\(" "$file" | head -n 1 | cut -d: -f1)
    if [ -z "$line" ]; then echo "$doc: $link: no definition of '$sym' in $target"; fail=1; continue; fi
    if [ "$doc" = docs/guide.md ] && [ "$sec" != 0 ]; then
      from=$((line > 10 ? line - 10 : 1))
      if ! sed -n "${from},${line}p" "$file" | grep -q "guide.md §${sec}\b"; then
        echo "$target:$line: '$sym' is linked from guide.md §$sec but does not cite it (add '// guide.md §$sec ...')"; fail=1
      fi
    fi
  done < <(awk '/^## [0-9]+\./ { sec = $2; sub(/\./, "", sec) }
                { s = $0; while (match(s, /\]\(\.\.\/[^)#]+#[A-Za-z_][A-Za-z0-9_]*\)/)) {
                    print (sec == "" ? 0 : sec), substr(s, RSTART + 2, RLENGTH - 3); s = substr(s, RSTART + RLENGTH) } }' "$doc")
done
echo "check_docs: $n links checked"
exit $fail
