# Shared by the maintainer scripts: build-debs pastes it in where each script asks for it.
# systemd is used only when it runs (PID 1: /run/systemd/system exists) and through Debian's
# helpers when they are installed; without them, or on a machine without systemd (a container,
# these lab machines), it is skipped quietly. deb-systemd-invoke honours policy-rc.d: where that
# forbids starting services, nothing starts.
have() { command -v "$1" >/dev/null 2>&1; }
systemd_running() { [ -d /run/systemd/system ]; }
units_enable() {
  # what dh_installsystemd does: enabled on the first installation (was-enabled says yes when
  # there is no state yet), later the administrator's choice kept. Each unit has a
  # ConditionPathExists= on its configuration: enabled but not yet configured, it is skipped.
  have deb-systemd-helper || return 0
  for unit in "$@"; do
    deb-systemd-helper unmask "$unit" >/dev/null || true
    if deb-systemd-helper --quiet was-enabled "$unit"; then
      deb-systemd-helper enable "$unit" >/dev/null || true
    else
      deb-systemd-helper update-state "$unit" >/dev/null || true
    fi
  done
}
units_reload() { systemd_running && have systemctl && systemctl --system daemon-reload >/dev/null 2>&1 || true; }
units_try_restart() {
  # restarts what already ran (an upgrade); starts nothing new
  systemd_running && have deb-systemd-invoke || return 0
  deb-systemd-invoke try-restart "$@" >/dev/null || true
}
units_stop() {
  systemd_running && have deb-systemd-invoke || return 0
  deb-systemd-invoke stop "$@" >/dev/null || true
}
units_purge() {
  have deb-systemd-helper || return 0
  for unit in "$@"; do
    deb-systemd-helper purge "$unit" >/dev/null || true
    deb-systemd-helper unmask "$unit" >/dev/null || true
  done
}
units_forget() {
  # removed, not purged (what dh_installsystemd does): masked, so that enablement links left
  # behind point nowhere; the state is kept for a reinstallation (whose postinst unmasks)
  have deb-systemd-helper || return 0
  deb-systemd-helper mask "$@" >/dev/null 2>&1 || true
}
