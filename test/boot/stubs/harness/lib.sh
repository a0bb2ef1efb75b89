# Helpers shared by the boot harness's stubs (sourced, never run). Everything the stubs know lives
# under /.harness on the instance's disk (it survives reboots) or /run/harness (reset every boot).
# The stubs run hundreds of times per boot, so these helpers avoid starting processes.
H=/.harness
RUN=/run/harness
[ -d "$RUN" ] || mkdir -p "$RUN"

# Records one call (the stub's name and argv) in this boot's call log, unless systemd or the
# harness itself made it. Fields are separated by \x1f, records end with \x1e and a newline.
hlog() {
  [ -n "${HARNESS_SYSTEM:-}" ] && return 0
  local boot clock=0
  read -r boot < "$H/boot"
  [ -f "$RUN/clock" ] && read -r clock < "$RUN/clock"
  {
    printf '%s\x1f%s' "$clock" "${HARNESS_AS_USER:-root}"
    printf '\x1f%s' "$@"
    printf '\x1e\n'
  } >> "$H/log/boot-$boot.calls"
}

# Whether the test injected this fault (one per line in /.harness/config/faults).
hfault() {
  local line
  [ -f "$H/config/faults" ] || return 1
  while IFS= read -r line; do [ "$line" = "$1" ] && return 0; done < "$H/config/faults"
  return 1
}

# The virtual clock: seconds since this boot's user data started. Only the sleep and curl stubs
# advance it, so waits take no real time and tests can still measure how long a boot would take.
hclock() {
  local clock=0
  [ -f "$RUN/clock" ] && read -r clock < "$RUN/clock"
  echo "$clock"
}
hclock_add() {
  local clock=0
  [ -f "$RUN/clock" ] && read -r clock < "$RUN/clock"
  echo $((clock + $1)) > "$RUN/clock"
}

# Installed packages, recorded by the dnf stub (and the AMI's own, seeded by the harness).
hinstalled() {
  [ -e "$H/pkgs/$1" ]
}
hinstalled_like() {
  local f
  for f in "$H"/pkgs/$1; do [ -e "$f" ] && return 0; done
  return 1
}

# What bash prints when a command is not installed.
hnot_found() {
  echo "${0##*/}: command not found" >&2
  exit 127
}

# udev: creates the NVMe device and its by-id link for every attached EBS volume whose attachment
# has completed by now. On Nitro instances EBS volumes are NVMe devices (/dev/nvme1n1 ...), and
# amazon-ec2-utils' udev rule links /dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_<volume id
# without its dash> to them (70-ec2-nvme-devices.rules; AWS EC2 User Guide, "Amazon EBS and NVMe").
hudev() {
  local index=1 vol delay link
  [ -e /dev/nvme0n1 ] || echo root > /dev/nvme0n1
  local clock=0
  [ -f "$RUN/clock" ] && read -r clock < "$RUN/clock"
  while read -r vol delay; do
    [ -n "$vol" ] || continue
    if [ "$clock" -ge "${delay:-0}" ] && [ ! -e "/dev/nvme${index}n1" ]; then
      echo "$vol" > "/dev/nvme${index}n1"
      link="/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_${vol//-/}"
      ln -s "../../nvme${index}n1" "$link"
      mkdir -p "$H/ebs/$vol/fs"
    fi
    index=$((index + 1))
  done < "$H/config/attached"
}

# The EBS volume behind a device path (following symlinks), or nothing.
hvolume_of() {
  local dev
  dev=$(readlink -f -- "$1" 2> /dev/null) || return 1
  case $dev in /dev/nvme[1-9]*n1) ;; *) return 1 ;; esac
  [ -f "$dev" ] || return 1
  cat "$dev"
}

# The device of the attached volume whose filesystem has this UUID (or label).
hdevice_with() {
  local key=$1 value=$2 dev vol
  for dev in /dev/nvme[1-9]*n1; do
    [ -f "$dev" ] || continue
    vol=$(< "$dev")
    if [ -f "$H/ebs/$vol/$key" ] && [ "$(< "$H/ebs/$vol/$key")" = "$value" ]; then
      echo "$dev"
      return 0
    fi
  done
  return 1
}

# systemd keeps unit files as they were at the last daemon-reload (or boot); a changed unit or
# drop-in takes effect only after `systemctl daemon-reload`. The stub reads units from this copy.
hsnapshot_units() {
  rm -rf "$RUN/units"
  mkdir -p "$RUN/units"
  if [ -d /etc/systemd/system ]; then cp -a /etc/systemd/system/. "$RUN/units/"; fi
}

# Whether a command that a package provides is installed (commands no package gates: yes).
hprovided() {
  case ${1##*/} in
    initdb | postgres | pg_ctl | postgresql-setup) hinstalled_like 'postgresql*-server' ;;
    psql | pg_dump | pg_restore | pg_isready) hinstalled_like 'postgresql[0-9]*' ;;
    docker) hinstalled docker ;;
    node | npm) hinstalled_like 'nodejs*' ;;
    *) return 0 ;;
  esac
}
