#!/usr/bin/env bash
# Install, upgrade, roll back or remove meterd on a Debian/Ubuntu box. Idempotent: run it again to upgrade.
#
#   systemd/install.sh [install] [--source DIR|WHEEL]   install or upgrade (the default action)
#   systemd/install.sh rollback                          back to the previous version's virtualenv
#   systemd/install.sh uninstall [--purge]               remove meterd; --purge also its data, config and user
#   add --dry-run to any of them to print what would be done
#
# install/upgrade: a system user `meterd`; a new virtualenv in /opt/meterd/releases/TIME beside the running
# one, switched to by the symlink /opt/meterd/venv (the one it replaces stays as /opt/meterd/previous for
# `rollback`; virtualenvs cannot be moved, links can); /etc/meterd/meterd.toml from the example only if there is none
# (0640 root:meterd); `meterd config check` before anything is switched; a backup of the store before
# its schema is migrated; `meterd db upgrade`; the unit installed, enabled and (re)started.
#
# For a staging tree or a test: DESTDIR=/some/dir puts every path under it, SKIP_SYSTEMD=1
# skips systemctl, SKIP_USER=1 skips the user and chown, PYTHON picks the interpreter.
set -o errexit -o pipefail -o nounset

here=$(cd "$(dirname "$0")" && pwd)
root=${DESTDIR:-}
opt="$root/opt/meterd"
etc="$root/etc/meterd"
state="$root/var/lib/meterd"
unit_dir="$root/etc/systemd/system"
python=${PYTHON:-python3}
action=install
source_path="$(dirname "$here")"
dry_run=0
purge=0

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'install.sh: %s\n' "$*" >&2; exit 1; }
run() { if [ "$dry_run" = 1 ]; then printf '+ %s\n' "$*"; else "$@"; fi; }
systemd() { [ "${SKIP_SYSTEMD:-0}" = 1 ] || run systemctl "$@"; }
as_meterd() { if [ "${SKIP_USER:-0}" = 1 ]; then run "$@"; else run runuser -u meterd -- "$@"; fi; }

while [ $# -gt 0 ]; do
    case "$1" in
    install | upgrade | rollback | uninstall) action=$1 ;;
    --source) source_path=${2:?--source needs a checkout directory or a wheel}; shift ;;
    --dry-run) dry_run=1 ;;
    --purge) purge=1 ;;
    -h | --help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
    esac
    shift
done
[ "$(id -u)" = 0 ] || [ -n "$root" ] || [ "$dry_run" = 1 ] || die "run it as root (or with sudo)"

config="$etc/meterd.toml"
meterd_in() { "$1/bin/meterd" "${@:2}"; }
release=""

# A release that failed to build, or that the running version was never switched to, does not stay behind.
drop_unswitched_release() {
    if [ -n "$release" ] && [ -d "$release" ] && [ "$(readlink "$opt/venv" 2>/dev/null || true)" != "$release" ]; then
        rm -rf "$release"
    fi
}
trap drop_unswitched_release EXIT
trap 'exit 130' INT TERM

install_meterd() {
    [ -e "$source_path" ] || die "$source_path: no such checkout or wheel (--source)"
    if [ "${SKIP_USER:-0}" != 1 ] && ! id meterd >/dev/null 2>&1; then
        say "creating the system user meterd"
        run useradd --system --home-dir /var/lib/meterd --shell /usr/sbin/nologin meterd
    fi
    release="$opt/releases/$(date -u +%Y%m%dT%H%M%SZ)-$$"
    say "building a new virtualenv from $source_path in $release"
    run mkdir -p "$opt/releases"
    run "$python" -m venv "$release"
    run "$release/bin/python" -m pip install --quiet --upgrade pip ||
        die "pip could not reach the package index (messages above); behind a proxy that inspects TLS, trust its CA first (docs/install.md, section 1)"
    run "$release/bin/python" -m pip install --quiet "$source_path" ||
        die "pip could not install meterd from $source_path (messages above); the running version is untouched"
    run install -d -m 0750 "$etc"
    if [ ! -e "$config" ]; then
        say "writing $config from the example: edit site and snmp.targets, or run 'meterd init'"
        run install -m 0640 "$(dirname "$here")/config/meterd.example.toml" "$config"
        # The example's state_dir is the packaged default; the unit's StateDirectory is this one.
        if [ "$dry_run" = 0 ]; then sed -i "s|^state_dir = .*|state_dir = \"$state\"|" "$config" || true; fi
    else
        say "keeping $config"
    fi
    if [ "${SKIP_USER:-0}" != 1 ]; then run chown root:meterd "$etc" "$config"; fi
    run install -d -m 0750 "$state"
    if [ "${SKIP_USER:-0}" != 1 ]; then run chown meterd:meterd "$state"; fi
    say "checking $config with the new version"
    [ "$dry_run" = 1 ] || meterd_in "$release" config check --config "$config" >/dev/null ||
        die "the new version refuses $config (message above); the running version is untouched"
    if [ -e "$opt/venv" ] && [ -e "$state/meterd.db" ]; then
        say "backing up the store before its schema is migrated"
        as_meterd "$release/bin/meterd" backup --config "$config"
    fi
    systemd stop meterd 2>/dev/null || true
    if [ -L "$opt/venv" ]; then
        run ln -sfn "$(readlink "$opt/venv")" "$opt/previous"
    fi
    run ln -sfn "$release" "$opt/venv"
    # Keep the running release and the previous one; older ones go.
    for old in "$opt"/releases/*; do
        case "$old" in "$release" | "$(readlink "$opt/previous" 2>/dev/null || true)") continue ;; esac
        run rm -rf "$old"
    done
    say "migrating the store"
    as_meterd "$opt/venv/bin/meterd" db upgrade --config "$config"
    run install -d "$unit_dir"
    run install -m 0644 "$here/meterd.service" "$unit_dir/meterd.service"
    systemd daemon-reload
    systemd enable meterd
    systemd restart meterd  # starts it when stopped: one start on a first install, not enable --now and a restart
    say "meterd $("$opt/venv/bin/python" -c 'import importlib.metadata as m; print(m.version("meterd"))' 2>/dev/null || echo '?') installed; 'meterd doctor' checks the box: $opt/venv/bin/meterd doctor --config $config"
}

rollback_meterd() {
    [ -L "$opt/previous" ] || die "no previous version ($opt/previous) to roll back to"
    systemd stop meterd 2>/dev/null || true
    current=$(readlink "$opt/venv")
    run ln -sfn "$(readlink "$opt/previous")" "$opt/venv"
    run ln -sfn "$current" "$opt/previous"
    say "back on $(readlink "$opt/venv"); if its schema is older, restore the backup taken before the upgrade:"
    say "  ls $state/backups; meterd restore FILE --force --config $config"
    systemd start meterd
}

uninstall_meterd() {
    systemd disable --now meterd 2>/dev/null || true
    run rm -f "$unit_dir/meterd.service"
    systemd daemon-reload
    run rm -rf "$opt"
    if [ "$purge" = 1 ]; then
        say "purging the store, its backups, the configuration and the user"
        run rm -rf "$state" "$etc"
        if [ "${SKIP_USER:-0}" != 1 ] && id meterd >/dev/null 2>&1; then run userdel meterd; fi
    else
        say "kept $state (the store and its backups) and $etc; --purge removes them"
    fi
}

case "$action" in
install | upgrade) install_meterd ;;
rollback) rollback_meterd ;;
uninstall) uninstall_meterd ;;
esac
