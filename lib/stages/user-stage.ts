/**
 * A stage of the scaling playbook, named by how many users it is sized for.
 *
 * Each stage is the one before it plus more constructs, so moving one stage up updates the same
 * stack in place.
 */
export enum UserStage {
  /** One server runs the web app, the API and PostgreSQL. */
  USERS_1 = '1',
  /** The database moves to managed RDS PostgreSQL. */
  USERS_10 = '10',
  /** The browser client moves to S3 behind CloudFront. */
  USERS_100 = '100',
  /** A load balancer in front of a fleet of stateless servers; Multi-AZ database. */
  USERS_1K = '1k',
  /** The CDN also fronts media and the API. */
  USERS_10K = '10k',
  /** A Redis cache tier and database read replicas. */
  USERS_100K = '100k',
  /** Queues and workers, WAF, dashboards and alarms. */
  USERS_1M = '1m',
  /** The 1m blueprint in several regions. */
  USERS_10M = '10m',
}
