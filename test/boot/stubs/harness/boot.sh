#!/bin/bash
# One boot of the fake instance, inside its chroot: what systemd does before cloud-init's final
# stage (udev, local-fs.target from /etc/fstab, enabled services), then cloud-init's scripts-user
# runs the user data's shell script, /var/lib/cloud/instance/scripts/part-001, as cloud-init does:
# executed directly (its shebang picks the shell) as root with systemd's PATH.
set -euo pipefail
. /.harness-image/lib.sh
export HARNESS_SYSTEM=1
boot=$(< "$H/boot")
echo 0 > "$RUN/clock"
echo "$(date +%s)" > "$RUN/booted"
hudev
hsnapshot_units

# local-fs.target: mounts every /etc/fstab entry. An entry whose device is missing fails the
# boot into emergency mode unless it has `nofail`, and then cloud-init never runs.
while read -r spec file type opts _; do
  case $spec in '' | '#'*) continue ;; esac
  case $file in / | /boot/efi | swap | none) continue ;; esac
  case ",$opts," in *,noauto,*) continue ;; esac
  if ! mount "$file" > /dev/null 2>> "$H/log/boot-$boot.system"; then
    case ",$opts," in
      *,nofail,*) echo "fstab: $spec on $file ($type) not mounted (nofail)" >> "$H/log/boot-$boot.system" ;;
      *)
        echo "emergency mode: $spec on $file ($type) failed to mount" > "$H/log/boot-$boot.blocked"
        exit 90
        ;;
    esac
  fi
done < /etc/fstab

# multi-user.target: enabled units start; a unit that fails does not stop the boot.
for unit in "$H"/systemd/enabled/*; do
  [ -e "$unit" ] || continue
  systemctl start "${unit##*/}" 2>> "$H/log/boot-$boot.system" || true
done
unset HARNESS_SYSTEM

script=/var/lib/cloud/instance/scripts/part-001
# Machine.run: a command on the running instance instead of the user data.
if [ -f "$H/exec" ]; then
  command=$(< "$H/exec")
  rm -f "$H/exec"
  exec env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin LANG=C.UTF-8 bash -c "$command"
fi
exec env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin LANG=C.UTF-8 "$script"
