# Mounts the data volume DATA_VOLUME_ID at DATA_MOUNT. It formats the volume only when it holds no
# filesystem, so a reboot, an in-place upgrade or a rerun never wipes data.
device="/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_${DATA_VOLUME_ID//-/}"
for _ in $(seq 1 60); do
  [ -e "$device" ] && break
  sleep 5
done
if [ ! -e "$device" ]; then
  echo "data volume $DATA_VOLUME_ID is not attached after 5 minutes" >&2
  exit 1
fi
if ! blkid "$device" >/dev/null 2>&1; then
  mkfs.xfs -L scale-data "$device"
fi
mkdir -p "$DATA_MOUNT"
uuid="$(blkid -s UUID -o value "$device")"
grep -q "UUID=$uuid" /etc/fstab || echo "UUID=$uuid $DATA_MOUNT xfs defaults,nofail 0 2" >> /etc/fstab
mountpoint -q "$DATA_MOUNT" || mount "$DATA_MOUNT"
