#!/usr/bin/env bash
# Run the documentation checks that ansible-test sanity would run, without the
# virtualenvs it cannot bootstrap here: every plugin renders with ansible-doc, and
# antsibull-docs lints the collection's documentation.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PWD/.venv/bin:$PATH
export ANSIBLE_COLLECTIONS_PATH=$PWD/.collections

status=0
for file in plugins/modules/*.py; do
  name=$(basename "$file" .py)
  if ! ansible-doc -t module "truebond.rollback.$name" >/dev/null; then
    echo "ansible-doc failed for module truebond.rollback.$name" >&2
    status=1
  fi
done
for file in plugins/callback/*.py; do
  [ -e "$file" ] || continue
  name=$(basename "$file" .py)
  if ! ansible-doc -t callback "truebond.rollback.$name" >/dev/null; then
    echo "ansible-doc failed for callback truebond.rollback.$name" >&2
    status=1
  fi
done
antsibull-docs lint-collection-docs --plugin-docs . || status=1
exit $status
