/**
 * Where servers keep the CA bundle that signs RDS's server certificates, which are not in the public
 * trust stores. See "Certificate bundles for all AWS Regions" in
 * https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/UsingWithRDS.SSL.html
 */
export const RDS_CA_FILE = '/etc/scale-stages/rds-ca-bundle.pem';
/** AWS's bundle for all Regions, from the same page. */
export const RDS_CA_URL = 'https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem';

/** A boot command that downloads the bundle, or says who cannot verify RDS without it. */
export function downloadRdsCaCommand(who: string): string {
  return `curl --silent --show-error --fail --retry 2 --max-time 20 -o ${RDS_CA_FILE} ${RDS_CA_URL} || echo '${who}: no RDS CA bundle, so it cannot verify an RDS certificate' >&2`;
}
