#!/usr/bin/env bash
# The promotion runbook of stage 10m, as one command: when the primary region's database is lost,
# the secondary region REGION takes the writes. It needs only REGION and CloudFront to answer, not the
# primary region:
#   1. promotes REGION's cross-region replica, and its replica of each shard when the database is
#      sharded, to standalone databases with 7 days of backups, and waits until each is available (RDS
#      reboots them; writes they had not replayed are lost);
#   2. makes REGION's replicas of the database's (and shards') secrets standalone, so that a rotation in
#      the old primary region can no longer change a password a promoted database does not know;
#   3. turns on Multi-AZ for each promoted database (in the background);
#   4. names REGION in the routing key value store (key writer-region), after which CloudFront sends
#      REGION every request, reads and writes, within seconds.
# Usage: scripts/promote-region.sh <appName> <region>     (the AWS CLI v2 and credentials)
set -euo pipefail

app=${1:?usage: scripts/promote-region.sh <appName> <region>}
region=${2:?usage: scripts/promote-region.sh <appName> <region>}
stack="$app-$region"

output() {
  aws cloudformation describe-stacks --region "$region" --stack-name "$stack" \
    --query "Stacks[0].Outputs[?OutputKey=='$1'].OutputValue" --output text
}

database=$(output DatabaseReplicaId)
secret=$(output DatabaseSecretArn)
if [ -z "$database" ] || [ "$database" = None ] || [ -z "$secret" ] || [ "$secret" = None ]; then
  echo "promote-region: stack $stack in $region has no DatabaseReplicaId or DatabaseSecretArn output; is it a stage-10m secondary region?" >&2
  exit 1
fi
# A sharded database's other shards (ShardReplicaIds and ShardSecretArns, comma-separated), else none.
databases=("$database")
secrets=("$secret")
shard_ids=$(output ShardReplicaIds)
if [ -n "$shard_ids" ] && [ "$shard_ids" != None ]; then
  IFS=, read -r -a more <<<"$shard_ids"
  databases+=("${more[@]}")
  IFS=, read -r -a more <<<"$(output ShardSecretArns)"
  secrets+=("${more[@]}")
fi
if [ "${#databases[@]}" -ne "${#secrets[@]}" ]; then
  echo "promote-region: stack $stack names ${#databases[@]} databases but ${#secrets[@]} secrets; promoted nothing" >&2
  exit 1
fi

echo "1/4 promoting ${databases[*]} in $region (backups kept 7 days)"
for db in "${databases[@]}"; do
  aws rds promote-read-replica --region "$region" --db-instance-identifier "$db" \
    --backup-retention-period 7 --output text --query DBInstance.DBInstanceStatus
done
for db in "${databases[@]}"; do
  aws rds wait db-instance-available --region "$region" --db-instance-identifier "$db"
done

echo "2/4 making the database secrets standalone in $region"
for arn in "${secrets[@]}"; do
  aws secretsmanager stop-replication-to-replica --region "$region" --secret-id "$arn" --output text --query ARN
done

echo "3/4 turning on Multi-AZ for ${databases[*]} (applied in the background)"
for db in "${databases[@]}"; do
  aws rds modify-db-instance --region "$region" --db-instance-identifier "$db" \
    --multi-az --apply-immediately --output text --query DBInstance.DBInstanceStatus
done

echo "4/4 sending every request to $region"
store=$(aws cloudfront describe-key-value-store --name "$app-routing" --query KeyValueStore.ARN --output text)
etag=$(aws cloudfront-keyvaluestore describe-key-value-store --kvs-arn "$store" --query ETag --output text)
aws cloudfront-keyvaluestore put-key --kvs-arn "$store" --if-match "$etag" \
  --key writer-region --value "$region" --output text --query ItemCount

echo "done: $region takes the writes. When the primary region is back, make it permanent:"
echo "  npx cdk deploy --all -c stage=10m -c writerRegion=$region   (README: promotion runbook)"
