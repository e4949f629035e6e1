#!/usr/bin/env bash
# Bootstrap the sandbox's base image from a Debian mirror, for hosts with no image registry.
#
#   images/sandbox/bootstrap-base.sh TAG MIRROR [SUITE]
#
# TAG     the image to create, e.g. pypi-rebuilder-base:bookworm
# MIRROR  a Debian archive URL the host can reach (the one its apt sources already use:
#         `apt-get indextargets --format '$(REPO_URI) $(RELEASE)'` lists them)
# SUITE   the Debian release (default: bookworm, whose python3 is 3.11)
#
# Needs root, debootstrap (`apt-get install -y debootstrap`) and the docker client.
set -euo pipefail

if [[ $# -lt 2 || $# -gt 3 ]]; then
    sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
fi
tag=$1
mirror=$2
suite=${3:-bookworm}

command -v debootstrap >/dev/null || { echo "debootstrap is not installed: apt-get install -y debootstrap" >&2; exit 3; }
[[ $(id -u) -eq 0 ]] || { echo "debootstrap needs root" >&2; exit 3; }

root=$(mktemp -d "${TMPDIR:-/tmp}/rebuilder-base.XXXXXX")
trap 'rm -rf --one-file-system "$root"' EXIT

echo "debootstrap $suite from $mirror into $root"
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    "$suite" "$root" "$mirror"

# Package lists and caches only make the image bigger and its content less stable.
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
    "$root"/var/log/* "$root"/tmp/*

echo "importing as $tag"
tar --numeric-owner -C "$root" -c . | docker import \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["/bin/bash"]' \
    - "$tag"
