# The official `openai` npm package (against `ratesim serve`), installed
# into tests/peers/node (git-ignored node_modules).
set -euo pipefail
dir="$(cd "$(dirname "$0")/../.." && pwd)/tests/peers/node"
mkdir -p "$dir"
want=7.59.0
have=$(node -p "require('$dir/node_modules/openai/package.json').version" 2>/dev/null || true)
if [ "$have" != "$want" ]; then
    (cd "$dir" && npm install --silent --no-audit --no-fund --no-save "openai@$want" >/dev/null)
fi
node -p "'openai (node) ' + require('$dir/node_modules/openai/package.json').version"
