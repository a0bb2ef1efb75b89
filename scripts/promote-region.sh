#!/usr/bin/env bash
# The promotion runbook of stage 10m, as one command: when the primary region's database is lost,
# the secondary region REGION takes the writes. It needs only REGION and CloudFront to answer, not the
# primary region:
#   1. promotes REGION's cross-region replica to a standalone database with 7 days of backups, and
#      waits until it is available (RDS reboots it; writes it had not replayed are lost);
#   2. makes REGION's replica of the database secret standalone, so that a rotation in the old
#      primary region can no longer change a password the promoted database does not know;
#   3. turns on Multi-AZ for the promoted database (in the background);
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

echo "1/4 promoting $database in $region (backups kept 7 days)"
aws rds promote-read-replica --region "$region" --db-instance-identifier "$database" \
  --backup-retention-period 7 --output text --query DBInstance.DBInstanceStatus
aws rds wait db-instance-available --region "$region" --db-instance-identifier "$database"

echo "2/4 making the database secret standalone in $region"
aws secretsmanager stop-replication-to-replica --region "$region" --secret-id "$secret" --output text --query ARN

echo "3/4 turning on Multi-AZ for $database (applied in the background)"
aws rds modify-db-instance --region "$region" --db-instance-identifier "$database" \
  --multi-az --apply-immediately --output text --query DBInstance.DBInstanceStatus

echo "4/4 sending every request to $region"
store=$(aws cloudfront describe-key-value-store --name "$app-routing" --query KeyValueStore.ARN --output text)
etag=$(aws cloudfront-keyvaluestore describe-key-value-store --kvs-arn "$store" --query ETag --output text)
aws cloudfront-keyvaluestore put-key --kvs-arn "$store" --if-match "$etag" \
  --key writer-region --value "$region" --output text --query ItemCount

echo "done: $region takes the writes. When the primary region is back, make it permanent:"
echo "  npx cdk deploy --all -c stage=10m -c writerRegion=$region   (README: promotion runbook)"
