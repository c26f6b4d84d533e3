#!/usr/bin/env bash
# Installs Debian's Chromium for the browser tests of `rationales review` (Playwright drives it
# through executable_path; Playwright's own browser download is never used: it needs the internet).
# Does nothing when `chromium` is already on PATH. Needs root (apt-get).
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install_browser.sh: chromium is missing and installing it needs root: run 'apt-get install -y chromium' as root (the browser tests are skipped without it)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq chromium >/dev/null
command -v chromium >/dev/null 2>&1 || { echo "install_browser.sh: chromium still not on PATH after apt-get" >&2; exit 1; }
echo "installed $(chromium --version 2>/dev/null || echo chromium)"
